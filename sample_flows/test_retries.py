"""README "Retries": searching the logs of earlier attempts of a @retry step."""

import pytest

from pytest_metaflow import assert_artifacts, assert_log_contains, assert_run_succeeded


@pytest.fixture(scope="module")
def resilient(runner_factory):
    return runner_factory("resilient_flow.py").run()


def test_earlier_attempts_are_searchable(resilient):
    assert_run_succeeded(resilient)
    assert_artifacts(resilient, step="flaky", attempts=2)
    # The first attempt's traceback is in its own stderr; the latest attempt is the default.
    assert_log_contains(resilient, "ConnectionError: transient outage", step="flaky", stream="stderr", attempt=0)
    assert_log_contains(resilient, "transient outage", step="flaky", stream="stderr", attempt="all")
