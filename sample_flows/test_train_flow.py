"""Testing a parameterised linear flow: one shared run, several focused tests."""

import pytest
from metaflow import Flow

from pytest_metaflow import assert_artifacts, assert_log_contains, assert_run_succeeded


@pytest.fixture(scope="module")
def trained(runner_factory):
    # One run shared by every test of this module (runner_factory is session-scoped).
    return runner_factory("train_flow.py").run(epochs=50)


def test_run_succeeds(trained):
    assert_run_succeeded(trained)


def test_model_fits_the_line(trained):
    assert_artifacts(trained, step="train", w=pytest.approx(2.0, abs=0.01), b=pytest.approx(1.0, abs=0.01))
    assert_artifacts(trained, step="evaluate", loss=pytest.approx(0.0, abs=1e-3))


def test_progress_is_logged(trained):
    assert_log_contains(trained, "epoch 50 done", step="train")


def test_parameters_reach_the_flow(runner):
    result = runner("train_flow.py").run(epochs=1, lr=0.1)
    assert_run_succeeded(result)
    assert result.run.data.epochs == 1
    assert_log_contains(result, "epoch 1 done", step="train")
    # The client in the test body sees this test's own store.
    assert Flow("TrainFlow").latest_run.pathspec == result.run.pathspec


def test_unknown_parameter_is_rejected_at_the_call(runner):
    with pytest.raises((TypeError, ValueError), match="epoch"):
        runner("train_flow.py").run(epoch=3)
