from pytest_metaflow import FLOW_DIR


def test_with_config_file(runner):
    # a relative path is read from the run's working directory: here the flow's own
    r = runner("flows/config_flow.py", cwd=FLOW_DIR, config={"train": "small.json"})
    result = r.run()
    assert result.run.data.lr == 0.1


def test_with_config_value(runner):
    result = runner("flows/config_flow.py", config_value={"train": {"lr": 0.5}}).run()
    assert result.run.data.lr == 0.5


def test_with_the_default_config_file(runner):
    # Config("train", default="train.json") next to the flow: run from there
    result = runner("flows/config_flow.py", cwd=FLOW_DIR).run()
    assert result.run.data.lr == 0.01
