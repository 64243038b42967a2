"""Config files and values through ``runner(...)``, resume of a configured run, and relative
paths (Config files, ``IncludeFile`` defaults) with ``cwd=FLOW_DIR``.

One real pytest session (``runpytest_subprocess``) holds the scenarios.
"""

from __future__ import annotations

import json
import textwrap

import pytest

CONFIG_FLOW = """
from metaflow import Config, FlowSpec, IncludeFile, Parameter, config_expr, step


class ConfigFlow(FlowSpec):
    cfg = Config("cfg", default="cfg.json")
    alpha = Parameter("alpha", type=int, default=config_expr("cfg.alpha"))

    @step
    def start(self):
        self.a = self.alpha
        self.label = self.cfg.label
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ConfigFlow()
"""

INCLUDE_FLOW = """
from metaflow import FlowSpec, IncludeFile, step


class IncludeFlow(FlowSpec):
    data = IncludeFile("data", default="data.txt")

    @step
    def start(self):
        self.text = self.data.strip()
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    IncludeFlow()
"""

SESSION = """
import os

import pytest

from pytest_metaflow import FLOW_DIR, ConfigFileNotFoundError, FlowStartError


def test_config_value_as_a_dict_and_resume(runner):
    r = runner("flows/config_flow.py", cwd=FLOW_DIR, config_value={"cfg": {"alpha": 7, "label": "inline"}})
    first = r.run()
    assert (first.run.data.a, first.run.data.label) == (7, "inline")
    resumed = r.resume(origin_run_id=first.run.id)  # configs come from the origin run
    assert resumed.status == "successful"
    assert (resumed.run.data.a, resumed.run.data.label) == (7, "inline")


def test_config_file_as_metaflow_takes_it_and_resume(runner):
    r = runner("flows/config_flow.py", cwd=FLOW_DIR, config=[("cfg", "../configs/other.json")])
    first = r.run()
    assert (first.run.data.a, first.run.data.label) == (5, "other")
    assert r.resume(origin_run_id=first.run.id).run.data.label == "other"


def test_resume_needs_the_default_config_file(runner):
    r = runner("flows/config_flow.py", config=[("cfg", "configs/other.json")])
    first = r.run()
    assert first.run.data.label == "other"
    with pytest.raises(ConfigFileNotFoundError, match="(?s)default config file 'cfg.json'.*resume takes the configs of the origin run.*cwd=FLOW_DIR"):
        r.resume(origin_run_id=first.run.id)


def test_default_config_file_from_the_flow_directory(runner):
    result = runner("flows/config_flow.py", cwd=FLOW_DIR).run()
    assert (result.run.data.a, result.run.data.label) == (3, "default")


def test_missing_default_config_names_path_and_cwd(runner):
    with pytest.raises(ConfigFileNotFoundError) as e:
        runner("flows/config_flow.py")
    cwd = os.getcwd()
    assert str(e.value).splitlines() == [
        f"default config file 'cfg.json' of Config 'cfg' not found: tried {cwd}/cfg.json (the run's working directory is {cwd})",
        "it exists next to the flow file: run from there with runner(flow, cwd=FLOW_DIR)  (from pytest_metaflow import FLOW_DIR)",
    ]


def test_missing_config_file_given(runner):
    with pytest.raises(ConfigFileNotFoundError, match="config file 'nope.json' of Config 'cfg' not found: tried .*nope.json"):
        runner("flows/config_flow.py", config={"cfg": "nope.json"})


def test_relative_include_file_default(runner):
    with pytest.raises(FlowStartError) as e:
        runner("flows/include_flow.py").run()
    message = str(e.value)
    assert "could not open file 'data.txt'" in message
    assert f"relative path 'data.txt' was looked up from the run's working directory {os.getcwd()}" in message
    assert "pass cwd=FLOW_DIR" in message
    assert runner("flows/include_flow.py", cwd=FLOW_DIR).run().run.data.text == "included"
"""


@pytest.fixture
def config_pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    flows = pytester.path / "flows"
    flows.mkdir()
    (flows / "config_flow.py").write_text(CONFIG_FLOW)
    (flows / "cfg.json").write_text(json.dumps({"alpha": 3, "label": "default"}))
    (flows / "include_flow.py").write_text(INCLUDE_FLOW)
    (flows / "data.txt").write_text("included\n")
    (pytester.path / "configs").mkdir()
    (pytester.path / "configs" / "other.json").write_text(json.dumps({"alpha": 5, "label": "other"}))
    return pytester


def test_config_and_relative_paths(config_pytester: pytest.Pytester) -> None:
    config_pytester.makepyfile(test_session=textwrap.dedent(SESSION))
    result = config_pytester.runpytest_subprocess("-rA")
    result.assert_outcomes(passed=7)


def test_collected_cases_declare_configs(config_pytester: pytest.Pytester) -> None:
    flow = config_pytester.path / "flows" / "config_flow.py"
    flow.write_text(
        'PYTEST_METAFLOW = {"cases": {\n'
        '    "default": {},\n'
        '    "file": {"config": {"cfg": "../configs/other.json"}},\n'
        '    "value": {"config_value": {"cfg": {"alpha": 9, "label": "v"}}, "params": {"alpha": 10}},\n'
        '    "missing": {"config": {"cfg": "nope.json"}},\n'
        "}}\n" + CONFIG_FLOW
    )
    result = config_pytester.runpytest_subprocess("--metaflow-collect=flows/config_flow.py", "flows", "-rA")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ ConfigFlow?missing? _*",
            "could not run the flow with config {'cfg': 'nope.json'}:",
            "ConfigFileNotFoundError: config file 'nope.json' of Config 'cfg' not found: tried *flows/nope.json*",
        ]
    )
