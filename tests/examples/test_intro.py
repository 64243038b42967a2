import pytest
from pytest_metaflow import assert_artifacts, assert_log_contains, assert_run_succeeded


def test_flow(runner):
    result = runner("sample_flows/train_flow.py").run(epochs=50)
    assert_run_succeeded(result)
    assert_artifacts(result, step="evaluate", loss=pytest.approx(0.0, abs=1e-3))
    assert_log_contains(result, "epoch 50 done", step="train")
