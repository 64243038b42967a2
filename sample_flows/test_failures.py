"""Expected failures, and flows that recover from failures."""

import pytest

from pytest_metaflow import (
    assert_artifacts,
    assert_log_contains,
    assert_run_failed,
    assert_run_succeeded,
)


def test_valid_threshold_is_accepted(runner):
    result = runner("validate_flow.py").run(threshold=0.3)
    assert_run_succeeded(result)
    assert_artifacts(result, step="check", accepted=True)


@pytest.mark.parametrize("threshold", [-1.0, 2.0])
def test_bad_threshold_fails_the_check_step(runner, threshold):
    result = runner("validate_flow.py").run(threshold=threshold)
    assert_run_failed(result, step="check", exception=ValueError, match=r"within \[0, 1\]")


def test_retry_and_catch_keep_the_run_alive(runner):
    result = runner("resilient_flow.py").run()
    assert_run_succeeded(result)
    assert_artifacts(result, step="flaky", attempts=2)
    failure = result.run["optional"].task.data.failure
    assert "enrichment service is down" in str(failure)
    assert_log_contains(result, "optional step failed: True", step="end")
