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
    with pytest.raises(
        AssertionError, match=r"the 3 tasks of step 'square' differ:\n    value: expected \[1, 4\], got \[1, 4, 9\]"
    ):
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
    with pytest.raises(TypeError, match="attempt= takes an attempt number"):
        assert_log_contains(ok, "x", attempt=-1)
    with pytest.raises(TypeError, match="rtol must be a number >= 0"):
        assert_artifacts(ok, x=4, rtol="1%")
    with pytest.raises(TypeError, match="exception= takes an exception class"):
        assert_run_failed(ok, exception=3)  # type: ignore[arg-type]


# -- numpy and pandas artifacts (issue 10.7) --------------------------------------


@pytest.fixture(scope="module")
def arrays(runner_factory: Any) -> Any:
    return runner_factory(FLOWS / "arrays.py").run()


def test_equal_arrays_frames_and_series_pass(arrays: Any) -> None:
    import numpy as np
    import pandas as pd

    assert_artifacts(
        arrays,
        matrix=np.arange(6, dtype="float64").reshape(2, 3) / 10,
        labels=np.array([1, 2, 3]),
        frame=pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5]}, index=["x", "y", "z"]),
        series=pd.Series([10, 20, 30], name="score"),
        nested={"w": np.ones(3), "n": 2},  # arrays inside containers too
    )
    assert_artifacts(arrays, labels=[1, 2, 3])  # a list expected: values compared, not dtype


def _failure(run: Any, /, **expected: Any) -> str:
    with pytest.raises(AssertionError) as info:
        assert_artifacts(run, **expected)
    return str(info.value)


def test_array_mismatch_names_the_element(arrays: Any) -> None:
    import numpy as np

    wrong = np.arange(6, dtype="float64").reshape(2, 3) / 10
    wrong[1, 2] = 9.0
    msg = _failure(arrays, matrix=wrong)
    assert "matrix: arrays differ; first at index (1, 2): expected 9.0, got 0.5" in msg
    assert "Mismatched elements: 1 / 6" in msg  # numpy.testing's own report
    assert "artifacts that exist: frame, labels, matrix, name, nested, series" in msg
    assert len(msg.splitlines()) < 30


def test_array_dtype_and_shape_mismatches(arrays: Any) -> None:
    import numpy as np

    msg = _failure(arrays, labels=np.array([1, 2, 3], dtype="int32"))
    assert "labels: dtype mismatch: expected int32, got int64 (shape (3,))" in msg
    msg = _failure(arrays, matrix=np.zeros((3, 2)))
    assert "matrix: shape mismatch: expected (3, 2), got (2, 3) (dtype float64)" in msg
    msg = _failure(arrays, nested={"w": np.ones(4), "n": 2})
    assert "nested: at ['w']: shape mismatch: expected (4,), got (3,)" in msg


def test_frame_mismatch_names_column_row_and_dtype(arrays: Any) -> None:
    import pandas as pd

    frame = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5]}, index=["x", "y", "z"])
    wrong = frame.copy()
    wrong.loc["z", "b"] = 9.0
    msg = _failure(arrays, frame=wrong)
    assert "frame: DataFrames differ:" in msg
    assert 'column name="b"' in msg
    assert "row 'z', column 'b': expected 9.0, got 2.5" in msg
    msg = _failure(arrays, frame=frame.astype({"a": "float64"}))
    assert 'Attribute "dtype" are different' in msg and "[actual]:  int64" in msg
    msg = _failure(arrays, frame=frame.iloc[:2])
    assert "DataFrame shape mismatch" in msg
    msg = _failure(arrays, series=pd.Series([10, 20, 31], name="score"))
    assert "series: Series differ:" in msg and "row 2, column 'score': expected 31, got 30" in msg
    msg = _failure(arrays, frame=[1, 2])
    assert "frame: expected a list" not in msg and "frame:" in msg


def test_tolerances_rtol_atol_and_approx(arrays: Any) -> None:
    import numpy as np
    import pandas as pd

    near = np.arange(6, dtype="float64").reshape(2, 3) / 10 + 1e-9
    assert "arrays differ" in _failure(arrays, matrix=near)
    assert_artifacts(arrays, matrix=near, atol=1e-6)
    assert_artifacts(arrays, matrix=pytest.approx(near, abs=1e-8))
    assert_artifacts(arrays, matrix=near.astype("float32"), rtol=1e-6, atol=1e-7)  # tolerance: dtype may differ
    frame = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5001]}, index=["x", "y", "z"])
    assert_artifacts(arrays, frame=frame, rtol=1e-3)
    assert "(rtol=1e-06, atol=0)" in _failure(arrays, frame=frame, rtol=1e-6)
    assert_artifacts(arrays, nested={"w": np.ones(3) + 1e-9, "n": 2}, atol=1e-6)
    msg = _failure(arrays, matrix=pytest.approx(near * 2))
    assert "matrix: not approximately equal (pytest.approx rel=1e-06, abs=1e-12): 6 of 6 elements differ" in msg


def test_plain_values_with_tolerance(ok: Any) -> None:
    assert_artifacts(ok, x=4.01, rtol=0.01)
    assert "x: expected 4.01 (rtol=0.001, atol=0), got 4: off by 0.01" in _failure(ok, x=4.01, rtol=0.001)


# -- names that collide with parameters (issue 10.8) ------------------------------


def test_artifacts_named_like_parameters(runner_factory: Any) -> None:
    import inspect

    import metaflow

    if "start" not in inspect.signature(metaflow.step).parameters:
        # tests/flows/custom_steps.py names its start/end steps: @step(start=True) is newer than
        # the oldest Metaflow supported (2.19.0 has no such argument).
        pytest.skip(f"@step(start=True) needs a newer Metaflow than {metaflow.__version__}")
    run = runner_factory(FLOWS / "custom_steps.py").run()
    assert_artifacts(run, result=42, expected="e")  # positional-only parameters free these names
    assert_artifacts(run, {"step": "a step", "rtol": 0.5})  # the mapping carries any name
    assert_artifacts(run, {"step": "a step"}, y=2)
    msg = _failure(run, result=43)
    assert "result: expected 43, got 42" in msg
    with pytest.raises(TypeError, match="both in the mapping and as keywords"):
        assert_artifacts(run, {"y": 2}, y=2)
    with pytest.raises(TypeError, match="takes a mapping"):
        assert_artifacts(run, [("y", 2)])  # type: ignore[arg-type]
    # Custom start/end steps (issue 10.9): the default is the flow's end step, `finish`.
    assert_artifacts(run, x=1, y=2)
    assert_artifacts(run, step="begin", x=1)
    assert_run_succeeded(run)
    assert_log_contains(run, "finished with 2", step="finish")


# -- retries (issue 10.12) ---------------------------------------------------------


@pytest.fixture(scope="module")
def retried(runner_factory: Any) -> Any:
    return runner_factory(FLOWS / "retrying.py").run()


def test_log_helpers_search_earlier_attempts(retried: Any) -> None:
    assert_run_succeeded(retried)
    assert_log_contains(retried, "attempt 1 of start", step="start")  # the latest attempt by default
    assert_log_not_contains(retried, "attempt 0 of start", step="start")
    assert_log_contains(retried, "attempt 0 of start", step="start", attempt=0)
    assert_log_contains(retried, "first try failing", step="start", stream="stderr", attempt=0)
    assert_log_matches(retried, r"attempt 0 of start\n(.|\n)*attempt 1 of start", step="start", attempt="all")
    with pytest.raises(AssertionError, match=r"'attempt 1' not found in the stdout of step 'start', attempt 0"):
        assert_log_contains(retried, "attempt 1", step="start", attempt=0)
    with pytest.raises(ValueError, match=r"no task ran attempt 2; attempts that ran: RetryingFlow/\d+/start/\d+: 0..1"):
        assert_log_contains(retried, "x", step="start", attempt=2)
    # @catch: the step's output is kept, the run goes on.
    assert_log_contains(retried, "fragile says hi", step="fragile")
    assert_log_contains(retried, "problem was MetaflowExceptionWrapper")


def test_failure_digest_shows_the_failing_attempt(runner: Any) -> None:
    result = runner(FLOWS / "retrying.py").run(always=True)
    with pytest.raises(AssertionError) as info:
        assert_run_succeeded(result)
    msg = str(info.value)
    assert "step 'start' failed (task RetryingFlow/" in msg
    assert ", attempt 1 (the last of 2)): ValueError: flaky 1" in msg
    assert "attempt 0 failed too: ValueError: flaky 0" in msg
    assert_run_failed(result, step="start", exception=ValueError, match="flaky 1")


# -- failure matching (issue 10.13) ------------------------------------------------


def test_exception_subclasses_match(failed: Any) -> None:
    assert_run_failed(failed, exception=Exception)  # ValueError is an Exception
    assert_run_failed(failed, exception=(KeyError, ValueError))
    with pytest.raises(AssertionError, match="to raise LookupError, but got boom: ValueError: bad alpha 42"):
        assert_run_failed(failed, exception=LookupError)
    with pytest.raises(AssertionError, match="to raise KeyError or TypeError"):
        assert_run_failed(failed, exception=(KeyError, TypeError))


def test_run_failed_outside_any_task(runner: Any) -> None:
    result = runner(FLOWS / "too_many_splits.py").run(max_num_splits=2)
    assert_run_failed(result)
    assert_run_failed(result, match=r"yielded 4 child steps which is more than the current maximum of 2")
    with pytest.raises(AssertionError, match="not found in the output of the Metaflow runtime"):
        assert_run_failed(result, match="no such text")
    with pytest.raises(AssertionError) as info:
        assert_run_succeeded(result)
    assert "no task failed; the Metaflow runtime stopped the run: Step start (task-id 1) failed: Foreach" in str(
        info.value
    )
    with pytest.raises(AssertionError, match="has no task of its end step 'end'"):
        assert_artifacts(result, items=[0, 1, 2, 3])
    assert_artifacts(result, step="start", items=[0, 1, 2, 3])


def test_big_arrays_are_compared_slice_by_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small slices make the test array "big": the same code path as a 200 MB artifact."""
    import numpy as np

    from pytest_metaflow import _compare

    monkeypatch.setattr(_compare, "_CHUNK", 7)
    monkeypatch.setattr(_compare, "_BIG", 20)
    expected = np.arange(60, dtype="float64").reshape(12, 5)
    assert _compare.difference(expected, expected.copy()) is None
    assert _compare.difference(pytest.approx(expected, abs=1e-6), expected + 1e-9) is None
    actual = expected.copy()
    actual[7, 3] = -1.0
    actual[11, 4] = np.nan
    msg = _compare.difference(expected, actual)
    assert msg is not None
    assert msg.startswith("arrays differ; first at index (7, 3): expected 38.0, got -1.0:")
    assert "Mismatched elements: 2 / 60" in msg
    assert " [11, 4]: nan (ACTUAL), 59.0 (DESIRED)" in msg
    approx = _compare.difference(pytest.approx(expected), actual)
    assert approx is not None and "2 of 60 elements differ; first at index (7, 3)" in approx
    assert _compare.difference(expected, actual, _compare.Tolerance(atol=100)) is not None  # NaN is not close
