"""The public types: a user's suite (tests/typing/user_suite.py) type-checks under ``mypy --strict``
with every fixture value and helper result typed (never ``Any``), and runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_metaflow

USER_SUITE = Path(__file__).parent / "typing" / "user_suite.py"
FLOWS = Path(__file__).parent / "flows"

# What each reveal_type line of the user suite must show, in order.
EXPECTED = [
    ("runner", "pytest_metaflow.fixtures.RunnerFixture"),
    ("flow", "pytest_metaflow._runner.FixtureRunner"),
    ("result", "metaflow.runner.metaflow_runner.ExecutingRun"),
    ("result.run", "metaflow.client.core.Run"),
    ("metaflow_store", "pytest_metaflow._store.Store"),
    ("nbrunner", "pytest_metaflow._nbrunner.NBRunnerFixture"),
    ("notebook_runner", "pytest_metaflow._nbrunner.FixtureNBRunner"),
    ("run", "metaflow.client.core.Run"),
    ("run_notebook", "pytest_metaflow._run_notebook.NotebookFixture"),
    ("notebook", "nbformat.notebooknode.NotebookNode"),
]


def _mypy(directory: Path, *files: str) -> subprocess.CompletedProcess[str]:
    # An editable install is found through an import hook mypy does not follow: point it at the source.
    source = str(Path(pytest_metaflow.__file__).parent.parent)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--follow-imports=silent", *files],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "MYPYPATH": source},
    )


def test_a_users_suite_is_typed_under_mypy_strict(tmp_path: Path) -> None:
    shutil.copy(USER_SUITE, tmp_path / "test_user_suite.py")
    misuse = tmp_path / "misuse.py"
    misuse.write_text(
        "from pytest_metaflow import RunnerFixture, assert_run_succeeded\n\n\n"
        "def wrong(runner: RunnerFixture) -> None:\n"
        '    assert_run_succeeded("hello.py")\n'
        "    runner(42)\n"
    )
    checked = _mypy(tmp_path, "test_user_suite.py", "misuse.py")
    revealed = re.findall(r'test_user_suite\.py:\d+: note: Revealed type is "([^"]+)"', checked.stdout)
    assert [r for r in revealed if "Any" in r] == [], checked.stdout
    assert revealed == [t for _, t in EXPECTED], checked.stdout
    errors = [line for line in checked.stdout.splitlines() if "error:" in line]
    # The suite itself is clean; the misuse is caught, argument by argument.
    assert [e for e in errors if e.startswith("test_user_suite.py")] == [], checked.stdout
    assert any('"assert_run_succeeded" has incompatible type "str"' in e for e in errors), checked.stdout
    assert any('"__call__" of "RunnerFixture" has incompatible type "int"' in e for e in errors), checked.stdout


def test_the_users_suite_runs(pytester: pytest.Pytester) -> None:
    shutil.copy(USER_SUITE, pytester.path / "test_user_suite.py")
    shutil.copy(FLOWS / "hello.py", pytester.path / "hello.py")
    result = pytester.runpytest_subprocess("test_user_suite.py")
    result.assert_outcomes(passed=2)


def test_the_types_are_exported_and_documented() -> None:
    for name in ("RunnerFixture", "NBRunnerFixture", "NotebookFixture", "FixtureNBRunner", "MetaflowStore"):
        value = getattr(pytest_metaflow, name)
        assert name in pytest_metaflow.__all__ and value.__doc__, name
    # FixtureRunner imports metaflow, so it is exported on demand.
    assert "FixtureRunner" in pytest_metaflow.__all__ and pytest_metaflow.FixtureRunner.__doc__
    # No Protocol repeats a signature: the fixture's value is an instance of the class whose __call__ runs.
    assert pytest_metaflow.RunnerFixture.__call__.__doc__
