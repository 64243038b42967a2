"""Flow files collected as tests: --metaflow-collect / metaflow_collect, PYTEST_METAFLOW cases."""

from __future__ import annotations

import re
import textwrap

import pytest

from pytest_metaflow._collect import FlowCase, inspect_flow_file

from .conftest import FLOWS

CASES_FLOW = """
from metaflow import FlowSpec, Parameter, step

PYTEST_METAFLOW = {
    "cases": {
        "small": {"params": {"alpha": 2}},
        "big": {"params": {"alpha": 100}, "marks": ["slow"]},
        "negative": {"params": {"alpha": -1}, "expect": "failure", "step": "start",
                     "exception": "ValueError", "match": "alpha must be >= 0"},
        "wrongly_expected": {"expect": "failure"},
        "badtype": {"params": {"alpha": "x"}},
        "later": {"skip": "not today"},
    }
}


class CasesFlow(FlowSpec):
    alpha = Parameter("alpha", default=1, type=int)

    @step
    def start(self):
        if self.alpha < 0:
            raise ValueError("alpha must be >= 0")
        self.x = self.alpha + 1
        self.next(self.end)

    @step
    def end(self):
        print("x is", self.x)


if __name__ == "__main__":
    CasesFlow()
"""

INI = """
[pytest]
markers = slow: a slow case
asyncio_default_fixture_loop_scope = function
"""


@pytest.fixture
def flows(flow_pytester: pytest.Pytester) -> pytest.Pytester:
    """tests/flows/*.py at the top, a flow with cases in flows/, and a test module."""
    flow_pytester.makeini(INI)
    (flow_pytester.path / "flows").mkdir()
    (flow_pytester.path / "flows" / "cases.py").write_text(CASES_FLOW)
    (flow_pytester.path / "helper.py").write_text("def helper():\n    return 1\n")
    flow_pytester.makepyfile(
        test_inline="""
        from metaflow import FlowSpec, step

        class InlineFlow(FlowSpec):
            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass

        if __name__ == "__main__":
            InlineFlow()

        def test_plain():
            pass
        """
    )
    return flow_pytester


def test_collection_does_not_import_metaflow(flow_pytester: pytest.Pytester) -> None:
    flow_pytester.makeconftest(
        """
        import sys

        def pytest_collection_finish(session):
            assert "metaflow" not in sys.modules, "collection imported metaflow"
            print("collected", len(session.items), "without metaflow")
        """
    )
    result = flow_pytester.runpytest_subprocess("--metaflow-collect=*.py", "--collect-only", "-q", "-s")
    n_flows = len(list(FLOWS.glob("*.py")))
    result.stdout.fnmatch_lines([f"collected {n_flows} without metaflow"])
    assert result.ret == 0


def _flow_items() -> list:
    """``file.py::FlowClass`` of every flow in tests/flows (each has no cases)."""
    items = []
    for path in sorted(FLOWS.glob("*.py")):
        name = re.search(r"^class (\w+)\(FlowSpec\)", path.read_text(), re.MULTILINE).group(1)
        items.append(f"{path.name}::{name}")
    return items


def test_collects_one_item_per_case(flows: pytest.Pytester) -> None:
    result = flows.runpytest_subprocess("--metaflow-collect=*.py", "--collect-only", "-q")
    cases = [
        f"flows/cases.py::CasesFlow[{c}]" for c in ("small", "big", "negative", "wrongly_expected", "badtype", "later")
    ]
    items = _flow_items()
    before = [i for i in items if i < "flows/"]
    after = [i for i in items if i > "flows/"]
    # Files are collected in name order; the test module sorts among the flow files.
    expected = [*before, *cases, *sorted([*after, "test_inline.py::test_plain"])]
    result.stdout.fnmatch_lines([*expected, f"{len(expected)} tests collected*"])
    # Not flows: a helper module, and a test module (collected as tests only).
    result.stdout.no_fnmatch_line("helper.py*")
    result.stdout.no_fnmatch_line("test_inline.py::InlineFlow*")
    assert result.ret == 0


def test_glob_with_a_slash_matches_the_rootdir_relative_path(flows: pytest.Pytester) -> None:
    flows.makeini(INI + "metaflow_collect =\n    flows/*.py\n    hello.py\n")
    result = flows.runpytest_subprocess("--collect-only", "-q")
    result.stdout.fnmatch_lines(
        ["flows/cases.py::CasesFlow[small]", "hello.py::HelloFlow", "test_inline.py::test_plain"]
    )
    result.stdout.no_fnmatch_line("failing.py*")
    # The command line replaces the ini list.
    result = flows.runpytest_subprocess("--metaflow-collect=failing.py", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["failing.py::FailingFlow", "test_inline.py::test_plain", "2 tests collected*"])


def test_cases_run_and_fail_with_the_run_digest(flows: pytest.Pytester) -> None:
    result = flows.runpytest_subprocess("--metaflow-collect=flows/*.py", "--metaflow-collect=failing.py", "-rs")
    result.assert_outcomes(passed=4, failed=3, skipped=1)
    out = result.stdout
    out.fnmatch_lines(
        [
            "*_ FailingFlow _*",
            "expected a successful run, but run FailingFlow/* is failed",
            "step 'boom' failed (task FailingFlow/*/boom/*): ValueError: bad alpha 42",
            '*raise ValueError("bad alpha 42")',
        ]
    )
    out.fnmatch_lines(
        [
            "*_ CasesFlow?wrongly_expected? _*",
            "expected the run to fail, but it is successful: CasesFlow/*",
        ]
    )
    out.fnmatch_lines(
        [
            "*_ CasesFlow?badtype? _*",
            "could not run the flow with params {'alpha': 'x'}:",
            "TypeError: *Invalid type for 'alpha'*",
        ]
    )
    out.fnmatch_lines(["SKIPPED ?1? flows/cases.py*: not today"])
    # A clean report: no traceback into the plugin, no duplicate "metaflow runs" section.
    out.no_fnmatch_line("*pytest_metaflow/*")
    out.no_fnmatch_line("*- metaflow runs -*")


def test_keyword_marker_and_last_failed_selection_under_xdist(flows: pytest.Pytester) -> None:
    flows.makeini(INI + "metaflow_collect = flows/*.py hello.py failing.py\n")  # with the cache plugin

    def ran(*args: str) -> list:
        result = flows.runpytest_subprocess("-n", "2", "-rA", *args)
        return sorted(line.split()[1] for line in result.outlines if line.startswith(("PASSED ", "FAILED ")))

    assert ran("-k", "small or big or Hello") == [
        "flows/cases.py::CasesFlow[big]",
        "flows/cases.py::CasesFlow[small]",
        "hello.py::HelloFlow",
    ]
    assert ran("-m", "slow") == ["flows/cases.py::CasesFlow[big]"]
    assert len(ran("-k", "not later")) == 8  # 5 cases, 2 flows, test_plain
    assert ran("--lf") == [
        "failing.py::FailingFlow",
        "flows/cases.py::CasesFlow[badtype]",
        "flows/cases.py::CasesFlow[wrongly_expected]",
    ]


def test_case_timeout_kills_the_run(flows: pytest.Pytester) -> None:
    (flows.path / "slow.py").write_text(
        (flows.path / "slow.py")
        .read_text()
        .replace("class SlowFlow", 'PYTEST_METAFLOW = {"timeout": 3}\n\n\nclass SlowFlow')
    )
    result = flows.runpytest_subprocess("--metaflow-collect=slow.py")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["the run did not finish within the case's timeout of 3 s and was killed*"])
    # The killed run did not make the test wait for the flow's 60 s sleep.
    assert result.duration < 50


@pytest.mark.parametrize(
    "declaration, message",
    [
        (
            'PYTEST_METAFLOW = {"cases": {"a": {"parms": {}}}}',
            "*PYTEST_METAFLOW?'cases'??'a'?: unknown key(s) 'parms'; known: params, *",
        ),
        (
            'PYTEST_METAFLOW = {"cases": {"a": {"expect": "boom"}}}',
            "*'expect' must be 'success' or 'failure', got 'boom'",
        ),
        ("PYTEST_METAFLOW = dict(cases={})", "*PYTEST_METAFLOW must be a literal*read without importing the flow"),
        (
            'PYTEST_METAFLOW = {"timeout": -1}',
            "*PYTEST_METAFLOW: 'timeout': the run timeout must be a number of seconds >= 0, got -1",
        ),
    ],
)
def test_bad_declarations_are_collection_errors(flow_pytester: pytest.Pytester, declaration: str, message: str) -> None:
    source = (flow_pytester.path / "hello.py").read_text()
    (flow_pytester.path / "hello.py").write_text(
        source.replace("class HelloFlow", declaration + "\n\n\nclass HelloFlow")
    )
    result = flow_pytester.runpytest_subprocess("--metaflow-collect=hello.py")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ERROR collecting hello.py*", message])
    result.stdout.no_fnmatch_line("*Traceback*")


def test_flow_detection(tmp_path) -> None:
    def inspect(source: str):
        path = tmp_path / "f.py"
        path.write_text(textwrap.dedent(source))
        return inspect_flow_file(path)

    # A base class imported from elsewhere: the __main__ block names the flow.
    found = inspect(
        """
        from mybase import BaseFlow

        class Mine(BaseFlow):
            pass

        if __name__ == "__main__":
            Mine()
        """
    )
    assert found is not None and found[0] == "Mine" and found[2] == [FlowCase(name=None)]
    # A base flow (no __main__ block starting it) is not a flow.
    assert inspect("import metaflow\nclass A(metaflow.FlowSpec):\n    pass\n") is None
    assert (
        inspect("import metaflow\nclass A(metaflow.FlowSpec):\n    pass\nif __name__ == '__main__':\n    A()\n")[0]
        == "A"
    )
    assert inspect("class NotAFlow:\n    pass\n") is None
    # Top-level keys are defaults that cases override.
    cases = inspect(
        """
        from metaflow import FlowSpec
        PYTEST_METAFLOW = {"params": {"a": 1}, "timeout": 5, "cases": {"x": {}, "y": {"params": {"a": 2}}}}
        class F(FlowSpec):
            pass
        if __name__ == "__main__":
            F()
        """
    )[2]
    assert [(c.name, c.params, c.timeout) for c in cases] == [("x", {"a": 1}, 5), ("y", {"a": 2}, 5)]


# -- a collected item's trouble is that item's failure, never the session's -------------

BASE_FLOW = '''
from metaflow import FlowSpec, step


class TrackedFlowSpec(FlowSpec):
    """A base flow: meant for inheritance, no __main__ block."""

    @step
    def start(self):
        self.tracked = True
        self.next(self.end)

    @step
    def end(self):
        pass
'''

CHILD_FLOW = """
from base import TrackedFlowSpec


class ChildFlow(TrackedFlowSpec):
    pass


if __name__ == "__main__":
    ChildFlow()
"""

TEMPLATE = """
{head}
from metaflow import FlowSpec, step{imports}
{body}

class {name}(FlowSpec):{attrs}
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    {name}()
"""


def _flow(name: str, head: str = "", imports: str = "", body: str = "", attrs: str = "") -> str:
    return TEMPLATE.format(name=name, head=head, imports=imports, body=body, attrs=attrs)


def test_collect_never_aborts_the_session(flow_pytester: pytest.Pytester) -> None:
    p = flow_pytester
    d = p.path / "real"
    d.mkdir()
    (d / "base.py").write_text(BASE_FLOW)
    (d / "child_flow.py").write_text(CHILD_FLOW)
    (d / "exits.py").write_text(_flow("ExitFlow", body="import os\nos._exit(3)\n"))
    (d / "sys_exits.py").write_text(_flow("SysExitFlow", body="import sys\nsys.exit(0)\n"))
    (d / "broken_import.py").write_text(_flow("BrokenImportFlow", imports="\nimport not_a_module_xyz"))
    (d / "needs_config.py").write_text(
        'PYTEST_METAFLOW = {"cases": {"missing": {}, "given": {"config_value": {"cfg": {"alpha": 3}}}}}\n'
        + _flow("ConfigFlow", imports=", Config", attrs='\n    cfg = Config("cfg", required=True)\n')
    )
    (d / "latin.py").write_bytes(
        _flow("LatinFlow", head="# -*- coding: latin-1 -*-", body='NAME = "café"').encode("latin-1")
    )
    (d / "undecodable.py").write_bytes(_flow("Undecodable", body="NAME = 'caf\xe9'").encode("latin-1"))
    p.makepyfile(test_after="def test_after():\n    pass\n")
    result = p.runpytest_subprocess("--metaflow-collect=real/*.py", "real", "test_after.py", "-rA")
    out = result.stdout
    out.no_fnmatch_line("*INTERNALERROR*")
    out.no_fnmatch_line("*TrackedFlowSpec*")  # the base module is not collected
    out.fnmatch_lines(
        [
            "*_ BrokenImportFlow _*",
            "could not run the flow:",
            "FlowStartError: importing the flow file *broken_import.py failed: ModuleNotFoundError: No module named 'not_a_module_xyz'",
        ]
    )
    out.fnmatch_lines(
        ["*_ ExitFlow _*", "*exits.py ended the process with exit code 3 (os._exit() or a crash) while being imported*"]
    )
    out.fnmatch_lines(["*_ SysExitFlow _*", "*sys_exits.py called sys.exit(0) while being imported*"])
    out.fnmatch_lines(["*_ ConfigFlow?missing? _*", "*missing configuration for 'cfg'*"])
    out.fnmatch_lines(
        ["*_ undecodable _*", "*undecodable.py is not valid utf-8 (byte 0xe9 on line *); *coding cookie*"]
    )
    passed = sorted(line.split()[1] for line in result.outlines if line.startswith("PASSED "))
    assert passed == [
        "real/child_flow.py::ChildFlow",
        "real/latin.py::LatinFlow",
        "real/needs_config.py::ConfigFlow[given]",
        "test_after.py::test_after",
    ]
    result.assert_outcomes(passed=4, failed=5)


def test_pytest_timeout_on_a_collected_flow_fails_that_item(flow_pytester: pytest.Pytester) -> None:
    result = flow_pytester.runpytest_subprocess(
        "--metaflow-collect=slow.py", "--metaflow-collect=hello.py", "--timeout=40", "slow.py", "hello.py"
    )
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    result.stdout.fnmatch_lines(["*Failed: Timeout (>40.0s) from pytest-timeout*"])
    result.assert_outcomes(passed=1, failed=1)


def test_case_timeout_zero_means_no_limit_and_wins_over_the_command_line(flow_pytester: pytest.Pytester) -> None:
    """A case's timeout is its item's marker: 0 is "no limit", as for the marker and --metaflow-timeout."""
    source = (flow_pytester.path / "hello.py").read_text()
    (flow_pytester.path / "hello.py").write_text(
        source.replace("class HelloFlow", 'PYTEST_METAFLOW = {"timeout": 0}\n\n\nclass HelloFlow')
    )
    assert [c.timeout for c in inspect_flow_file(flow_pytester.path / "hello.py")[2]] == [0]  # type: ignore[index]
    # A 1 s command-line timeout would kill the run: the case's "no limit" wins (marker > command line).
    result = flow_pytester.runpytest_subprocess("--metaflow-collect=hello.py", "--metaflow-timeout=1", "hello.py")
    result.assert_outcomes(passed=1)
