"""Every assertion helper's pass and fail paths, on real runs shared by the module."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pytest_metaflow import (
    assert_artifacts,
    assert_log_contains,
    assert_log_matches,
    assert_log_not_contains,
    assert_run_failed,
    assert_run_succeeded,
)

from .conftest import FLOWS


@pytest.fixture(scope="module")
def ok(runner_factory: Any) -> Any:
    return runner_factory(FLOWS / "hello.py").run(alpha=3)


@pytest.fixture(scope="module")
def failed(runner_factory: Any) -> Any:
    return runner_factory(FLOWS / "failing.py").run()


@pytest.fixture(scope="module")
def fanned(runner_factory: Any) -> Any:
    return runner_factory(FLOWS / "foreach.py").run()


def test_run_succeeded_passes(ok: Any) -> None:
    assert_run_succeeded(ok)
    assert_run_succeeded(ok.run)  # a metaflow.Run works too


def test_run_succeeded_fails_with_step_exception_and_traceback(failed: Any) -> None:
    with pytest.raises(AssertionError) as info:
        assert_run_succeeded(failed)
    msg = str(info.value)
    assert f"run {failed.run.pathspec} is failed" in msg
    assert "step 'boom' failed (task FailingFlow/" in msg
    assert "ValueError: bad alpha 42" in msg
    assert "boom stderr line" in msg  # the stderr tail
    assert 'failing.py", line' in msg  # the user's frame of the traceback


def test_run_failed_passes_on_step_exception_and_match(failed: Any) -> None:
    assert_run_failed(failed)
    assert_run_failed(failed, step="boom", exception=ValueError, match=r"alpha \d+")
    assert_run_failed(failed.run, exception="ValueError")
    assert_run_failed(failed, exception="builtins.ValueError")


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"step": "start"}, "to fail in step 'start', but it failed in: boom"),
        ({"exception": KeyError}, "to raise KeyError, but got boom: ValueError: bad alpha 42"),
        ({"match": "no such text"}, "regex 'no such text' not found in the error text"),
    ],
)
def test_run_failed_mismatch_messages(failed: Any, kwargs: dict, expected: str) -> None:
    with pytest.raises(AssertionError) as info:
        assert_run_failed(failed, **kwargs)
    assert expected in str(info.value)


def test_run_failed_on_a_successful_run(ok: Any) -> None:
    with pytest.raises(AssertionError, match="expected the run to fail, but it is successful"):
        assert_run_failed(ok)


def test_log_helpers_pass(ok: Any) -> None:
    assert_log_contains(ok, "hello from start")
    assert_log_contains(ok, "hello from start", step="start")
    assert_log_matches(ok, r"^done \d+$", step="end")
    assert_log_not_contains(ok, "hello from start", step="end")
    assert_log_not_contains(ok, "hello", stream="stderr")


def test_log_contains_failure_shows_the_tail(ok: Any) -> None:
    with pytest.raises(AssertionError) as info:
        assert_log_contains(ok, "goodbye", step="start")
    msg = str(info.value)
    assert "'goodbye' not found in the stdout of step 'start'" in msg
    assert "hello from start" in msg


def test_log_matches_and_not_contains_failures(ok: Any) -> None:
    with pytest.raises(AssertionError, match=re.escape("regex 'x{3}' does not match the stdout of")):
        assert_log_matches(ok, "x{3}")
    with pytest.raises(AssertionError, match=r"'hello' found in the stdout of .*1 line"):
        assert_log_not_contains(ok, "hello")


def test_log_on_stderr_of_failing_step(failed: Any) -> None:
    assert_log_contains(failed, "boom stderr line", step="boom", stream="stderr")


def test_artifacts_pass_and_approx(ok: Any) -> None:
    assert_artifacts(ok, x=4, alpha=3)
    assert_artifacts(ok, step="start", x=pytest.approx(4.0))
    assert_artifacts(ok.run["start"].task, x=4)  # a metaflow.Task


def test_artifacts_failure_shows_expected_actual_and_names(ok: Any) -> None:
    with pytest.raises(AssertionError) as info:
        assert_artifacts(ok, x=5, nope=1)
    msg = str(info.value)
    assert "x: expected 5, got 4" in msg
    assert "nope: no such artifact in HelloFlow/" in msg
    assert "artifacts that exist: alpha, name, x" in msg


def test_foreach_steps_compare_the_list_over_tasks(fanned: Any) -> None:
    assert_artifacts(fanned, step="square", value=[1, 4, 9])
    assert_artifacts(fanned, total=14)
    assert_log_contains(fanned, "squared 3 -> 9", step="square")
    with pytest.raises(AssertionError, match=r"the 3 tasks of step 'square' differ:\n    value: expected \[1, 4\], got \[1, 4, 9\]"):
        assert_artifacts(fanned, step="square", value=[1, 4])


def test_bad_arguments_are_errors_not_failures(ok: Any) -> None:
    with pytest.raises(TypeError, match="takes an ExecutingRun or metaflow.Run"):
        assert_run_succeeded("HelloFlow/1")
    with pytest.raises(ValueError, match="has no step 'nope'; its steps: start, end"):
        assert_log_contains(ok, "x", step="nope")
    with pytest.raises(ValueError, match="stream must be"):
        assert_log_contains(ok, "x", stream="both")
    with pytest.raises(TypeError, match="at least one"):
        assert_artifacts(ok)
