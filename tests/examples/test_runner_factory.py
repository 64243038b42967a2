import pytest
from pytest_metaflow import assert_artifacts


@pytest.fixture(scope="module")
def trained(runner_factory):
    return runner_factory("sample_flows/train_flow.py").run(epochs=50)


def test_loss(trained):
    assert_artifacts(trained, step="evaluate", loss=pytest.approx(0.0, abs=1e-3))
