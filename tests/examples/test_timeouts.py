import pytest


@pytest.mark.metaflow(timeout=30)  # seconds per run; 0 = no limit
def test_train(runner):
    result = runner("sample_flows/train_flow.py").run()
    assert result.status == "successful"
