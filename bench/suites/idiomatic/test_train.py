"""Idiomatic: one module-scoped run shared by the tests, spin for the step test."""

import pytest

from pytest_metaflow import assert_artifacts, assert_log_contains, assert_run_succeeded


@pytest.fixture(scope="module")
def trained(runner_factory):
    return runner_factory("train_flow.py").run(epochs=50)


def test_run_succeeds(trained):
    assert_run_succeeded(trained)


def test_model_fits_the_line(trained):
    assert_artifacts(trained, step="train", w=pytest.approx(2.0, abs=0.01), b=pytest.approx(1.0, abs=0.01))


def test_progress_is_logged(trained):
    assert_log_contains(trained, "epoch 50 done", step="train")


def test_evaluate_step(runner_factory, trained):
    spun = runner_factory("train_flow.py").spin(trained.run["evaluate"].task.pathspec, persist=True)
    assert_artifacts(spun, loss=pytest.approx(0.0, abs=1e-3))
