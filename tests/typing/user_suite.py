"""A test module written as a user of pytest-metaflow would write it, with annotations.

tests/test_typing.py checks it with ``mypy --strict`` and runs it with pytest:
every fixture's value and every helper's argument has a real type, and the
``reveal_type`` lines (type-checking only) must name those types, never ``Any``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metaflow.decorators import step
from metaflow.flowspec import FlowSpec

from pytest_metaflow import (
    MetaflowStore,
    NBRunnerFixture,
    NotebookFixture,
    RunnerFixture,
    assert_artifacts,
    assert_log_contains,
    assert_run_succeeded,
)

if TYPE_CHECKING:
    from typing_extensions import reveal_type


class InlineFlow(FlowSpec):
    @step
    def start(self) -> None:
        self.x = 1
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


def test_runner(runner: RunnerFixture, metaflow_store: MetaflowStore) -> None:
    flow = runner("hello.py", env={"GREETING": "typed"})
    result = flow.run(alpha=2)
    assert_run_succeeded(result)
    assert_log_contains(result, "hello from start", step="start")
    assert_artifacts(result, step="end", x=3)
    assert metaflow_store.path.is_dir()
    if TYPE_CHECKING:
        reveal_type(runner)
        reveal_type(flow)
        reveal_type(result)
        reveal_type(result.run)
        reveal_type(metaflow_store)


def test_nbrunner(nbrunner: NBRunnerFixture) -> None:
    notebook_runner = nbrunner(InlineFlow)
    run = notebook_runner.nbrun()
    assert_run_succeeded(run)
    if TYPE_CHECKING:
        reveal_type(nbrunner)
        reveal_type(notebook_runner)
        reveal_type(run)


def executed_notebook(run_notebook: NotebookFixture) -> int:
    """Not a test (no notebook here): checks the type of what ``run_notebook`` returns."""
    notebook = run_notebook("analysis.ipynb", timeout=60)
    if TYPE_CHECKING:
        reveal_type(run_notebook)
        reveal_type(notebook)
    return len(notebook.cells)
