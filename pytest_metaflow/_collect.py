"""Flow files as tests: ``--metaflow-collect=GLOB`` turns each matching flow file
into one test item per case.

A flow file is recognised with :mod:`ast` by the one rule of
:mod:`._flowfile` (collection never imports metaflow or the flow): it has an
``if __name__ == "__main__":`` block and a flow class for it to start; a module
that only defines a base flow is not collected. Cases come from an optional
module-level literal::

    PYTEST_METAFLOW = {
        "cases": {
            "small": {"params": {"epochs": 1}},
            "bad": {"params": {"threshold": 2.0}, "expect": "failure", "step": "check"},
            "gpu": {"skip": "needs a GPU"},
        }
    }

read with :func:`ast.literal_eval`. Keys at the top level are defaults for
every case.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from . import _flowconfig, _flowfile
from ._flowfile import FlowCase, inspect_flow_file
from .errors import InvalidFlowError, PytestMetaflowError, RunTimeoutError


class FlowCaseFailed(Exception):
    """A collected flow case did not behave as declared; the message is the report."""


def matches(path: Path, rootpath: Path, globs: Sequence[str]) -> bool:
    """Whether ``path`` matches a glob: against its name, or (glob with ``/``) its rootdir-relative path."""
    try:
        rel = path.relative_to(rootpath).as_posix()
    except ValueError:
        rel = path.as_posix()
    return any(fnmatch.fnmatch(rel if "/" in g else path.name, g) for g in globs)


def _is_test_module(path: Path, config: pytest.Config) -> bool:
    return any(fnmatch.fnmatch(path.name, pattern) for pattern in config.getini("python_files"))


class FlowFile(pytest.File):
    """A flow file collected by ``--metaflow-collect``: one item per case."""

    def collect(self) -> Iterable[pytest.Item]:
        try:
            found = inspect_flow_file(self.path)
        except InvalidFlowError as e:
            if not _unreadable_flow(self.path):
                raise
            # A flow file that cannot be decoded: its item fails with the one-line
            # reason; the session and the other flows go on.
            return [FlowItem.broken(self, self.path.stem, e)]
        if found is None:
            return []
        flow, lineno, cases = found
        return [FlowItem.from_case(self, flow, lineno, case) for case in cases]

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:  # type: ignore[override]
        if isinstance(excinfo.value, PytestMetaflowError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


def _unreadable_flow(path: Path) -> bool:
    """An undecodable file that still looks like a flow (so it is reported, not skipped)."""
    try:
        raw = path.read_bytes()
    except OSError:
        return True
    try:
        _flowfile.decode(raw, str(path))
    except InvalidFlowError:
        return b"FlowSpec" in raw and b"__main__" in raw
    return False


def _case_function(path: str, case: FlowCase) -> Any:
    # The item is a pytest Function so that fixtures (the hermetic store,
    # autouse fixtures of the user's conftest) apply as to any test.
    def run_flow_case(runner: Any) -> None:
        run_case(runner, path, case)

    return run_flow_case


class FlowItem(pytest.Function):
    """One case of a collected flow file, run in the test's hermetic store."""

    flow: str
    case: FlowCase
    lineno: int

    @classmethod
    def from_case(cls, parent: FlowFile, flow: str, lineno: int, case: FlowCase) -> FlowItem:
        name = flow if case.name is None else f"{flow}[{case.name}]"
        item = cls.from_parent(parent, name=name, callobj=_case_function(str(parent.path), case))
        item.flow, item.case, item.lineno = flow, case, lineno
        node_id = getattr(item, "_id", None)
        if case.name is not None and hasattr(node_id, "params") and hasattr(type(node_id), "parse"):
            # pytest >= 9.1 keeps ids structured ("[case]" as params) and --lf
            # compares them with ids parsed from the cache: build ours the same way.
            item._id = type(node_id).parse(str(node_id))  # type: ignore[union-attr]
        for mark in case.marks:
            item.add_marker(mark)
        if case.timeout is not None:
            # The case's run timeout is the test's marker: one rule (marker > command line > ini > default).
            item.add_marker(pytest.mark.metaflow(timeout=case.timeout))
        if case.skip:
            item.add_marker(pytest.mark.skip(reason=case.skip))
        return item

    @classmethod
    def broken(cls, parent: FlowFile, name: str, error: Exception) -> FlowItem:
        """An item that fails with ``error`` (a flow file that cannot be read)."""
        message = str(error)

        def unreadable_flow() -> None:
            raise FlowCaseFailed(message)

        item = cls.from_parent(parent, name=name, callobj=unreadable_flow)
        item.flow, item.case, item.lineno = name, FlowCase(name=None), 1
        return item

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, self.lineno - 1, self.name

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:  # type: ignore[override]
        # pytest >= 9 calls Function.repr_failure(excinfo) with no style argument.
        if isinstance(excinfo.value, FlowCaseFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


def run_case(runner_fixture: Any, path: str, case: FlowCase) -> None:
    """Run one case with the ``runner`` fixture; raise :class:`FlowCaseFailed` when it misbehaves."""
    from . import reporting
    from .assertions import assert_run_failed, assert_run_succeeded

    # From the flow's directory: relative paths in the flow (IncludeFile
    # defaults, data files) resolve the same whatever directory pytest runs in.
    try:
        runner = runner_fixture(
            path,
            env=case.env or None,
            cwd=os.path.dirname(path),
            **_flowconfig.case_kwargs(case.config, case.config_value),
        )
        result = runner.run(**case.params)
    except Exception as e:
        # Anything short of an interrupt is this item's failure, never the session's:
        # start errors, parameter validation (Metaflow's TypeError/ValueError), a
        # flow failing at import, a Config click refuses.
        if isinstance(e, RunTimeoutError) and case.timeout:
            # The runner's deadline (the case's timeout, through the item's marker) killed the run.
            raise FlowCaseFailed(
                f"the run did not finish within the case's timeout of {case.timeout:g} s and was killed\n"
                + (reporting.describe(e.result) if e.result is not None else str(e))
            ) from None
        given = [
            f"{k} {v!r}"
            for k, v in (("params", case.params), ("config", case.config), ("config_value", case.config_value))
            if v
        ]
        with_ = f" with {', '.join(given)}" if given else ""
        raise FlowCaseFailed(f"could not run the flow{with_}:\n{type(e).__name__}: {e}") from None
    try:
        if case.expect == "failure":
            assert_run_failed(result, step=case.step, exception=case.exception, match=case.match)
        else:
            assert_run_succeeded(result)
    except AssertionError as e:
        raise FlowCaseFailed(str(e)) from None


def collect_file(file_path: Path, parent: pytest.Collector, globs: Sequence[str]) -> FlowFile | None:
    """The ``pytest_collect_file`` logic: a :class:`FlowFile` for a matching non-test ``.py`` file."""
    config = parent.config
    if not globs or file_path.suffix != ".py" or _is_test_module(file_path, config):
        return None
    if not matches(file_path, config.rootpath, globs):
        return None
    return FlowFile.from_parent(parent, path=file_path)
