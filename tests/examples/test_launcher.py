import pytest
from pytest_metaflow import assert_run_succeeded


@pytest.mark.metaflow(launcher="exec")  # every run of this test
def test_fresh(runner):
    assert_run_succeeded(runner("sample_flows/train_flow.py").run(epochs=2))


def test_one_fresh_run(runner):
    assert_run_succeeded(runner("sample_flows/train_flow.py", launcher="exec").run(epochs=2))  # this runner only
