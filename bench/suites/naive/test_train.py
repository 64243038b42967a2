"""Naive: every test makes its own full run."""

import pytest

from pytest_metaflow import assert_artifacts, assert_log_contains, assert_run_succeeded


def test_run_succeeds(runner):
    assert_run_succeeded(runner("train_flow.py").run(epochs=50))


def test_model_fits_the_line(runner):
    result = runner("train_flow.py").run(epochs=50)
    assert_artifacts(result, step="train", w=pytest.approx(2.0, abs=0.01), b=pytest.approx(1.0, abs=0.01))


def test_progress_is_logged(runner):
    assert_log_contains(runner("train_flow.py").run(epochs=50), "epoch 50 done", step="train")


def test_evaluate_step(runner):
    result = runner("train_flow.py").run(epochs=50)
    assert_artifacts(result, step="evaluate", loss=pytest.approx(0.0, abs=1e-3))
