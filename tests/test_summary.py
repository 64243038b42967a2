"""Terminal summary, JUnit XML properties, report header and options of the session-level features."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

TESTS = """
import pytest

@pytest.fixture(scope="module")
def shared(runner_factory):
    return runner_factory("hello.py").run(alpha=7)

def test_two_runs(runner):
    runner("hello.py").run()
    runner("foreach.py").run()

def test_failed_run(runner):
    runner("failing.py").run()

def test_shared(shared):
    assert shared.status == "successful"

def test_no_flow():
    pass
"""


@pytest.fixture(params=[[], ["-n", "2"]], ids=["serial", "xdist"])
def xdist(request: pytest.FixtureRequest) -> list:
    return request.param


def test_summary_counts_runs_and_lists_the_slowest(flow_pytester: pytest.Pytester, xdist: list) -> None:
    flow_pytester.makepyfile(TESTS)
    result = flow_pytester.runpytest_subprocess("--metaflow-durations=2", *xdist)
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "*= metaflow =*",
            "4 flow runs (1 failed, 3 successful), *s of run time in total",
            "slowest 2 runs:",
            "*.??s  *Flow/* *  (test_summary_counts_runs_and_lists_the_slowest.py::test_*)",
            "*.??s  *Flow/* *  (test_summary_counts_runs_and_lists_the_slowest.py::test_*)",
            "slowest 2 steps:",
            "*.??s  *Flow/*/* (* task*)",
            "*.??s  *Flow/*/* (* task*)",
            "*= 4 passed*",
        ]
    )
    out = result.stdout.str()
    # The foreach's fan-out step is reported with its task count when all steps are shown.
    assert out.count("s  ForeachFlow/") + out.count("s  HelloFlow/") + out.count("s  FailingFlow/") == 4
    result = flow_pytester.runpytest_subprocess("--metaflow-durations=0", *xdist)
    result.stdout.fnmatch_lines(["runs by duration:", "steps by duration:", "*ForeachFlow/*/square (3 tasks)"])
    assert result.stdout.str().count("s  ForeachFlow/") == 1 + 4  # the run and its 4 steps


def test_no_summary_without_flow_runs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*= metaflow =*")


def test_junit_xml_has_each_tests_runs_as_properties(flow_pytester: pytest.Pytester, xdist: list) -> None:
    flow_pytester.makepyfile(TESTS)
    result = flow_pytester.runpytest_subprocess("--junitxml=out.xml", *xdist)
    result.assert_outcomes(passed=4)
    cases = {c.get("name"): c for c in ET.parse(flow_pytester.path / "out.xml").getroot().iter("testcase")}
    props = {name: [(p.get("name"), p.get("value")) for p in case.iter("property")] for name, case in cases.items()}
    assert [n for n, _ in props["test_two_runs"]] == ["metaflow_run", "metaflow_run"]
    assert [v.split("/")[0] for _, v in props["test_two_runs"]] == ["HelloFlow", "ForeachFlow"]
    assert all(v.endswith(" successful") for _, v in props["test_two_runs"])
    (prop,) = props["test_failed_run"]
    assert prop[0] == "metaflow_run" and prop[1].startswith("FailingFlow/") and prop[1].endswith(" failed")
    # A run made by a module fixture belongs to the test that first needed it.
    assert [v.split("/")[0] for _, v in props["test_shared"]] == ["HelloFlow"]
    assert props["test_no_flow"] == []


def test_report_header_shows_the_new_settings(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(
        "--metaflow-collect=flows/*.py",
        "--metaflow-collect=*_flow.py",
        "--metaflow-keep=failed",
        "--metaflow-durations=3",
    )
    result.stdout.fnmatch_lines(["metaflow: collect flows flows/*.py *_flow.py, keep stores failed, durations 3"])
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["metaflow: collect flows off, keep stores none, durations 5"])


def test_help_lists_the_new_options_with_ini_twins(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        ["*--metaflow-collect=GLOB*", "*--metaflow-keep=?none,failed,all?*", "*--metaflow-durations=N*"]
    )
    result.stdout.fnmatch_lines(["*metaflow_collect (args)*", "*metaflow_keep (string)*", "*metaflow_durations (*)*"])


def test_durations_value_is_validated(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--metaflow-durations=-1")
    result.stderr.fnmatch_lines(["*--metaflow-durations: expected a number >= 0 (0 shows all), got '-1'"])


def test_unfinished_and_failed_steps_are_marked() -> None:
    from pytest_metaflow import _summary

    runs = [
        {
            "pathspec": "SlowFlow/1",
            "status": "timeout",
            "seconds": 4.2,
            "test": "t.py::a",
            "finished": False,
            "steps": [["start", 3.9, 1, "unfinished"]],
        },
        {
            "pathspec": "FailingFlow/2",
            "status": "failed",
            "seconds": 2.5,
            "test": "t.py::b",
            "finished": True,
            "steps": [["start", 1.0, 1], ["boom", 1.2, 1, "failed"]],
        },
    ]
    out = _summary.lines(runs, 0)
    assert out[0] == "2 flow runs (1 failed, 1 timeout), 6.70s of run time in total"
    assert "    4.20s  SlowFlow/1 timeout (unfinished: timed to its last output)  (t.py::a)" in out
    assert "    2.50s  FailingFlow/2 failed  (t.py::b)" in out
    assert "    3.90s  SlowFlow/1/start (1 task, unfinished)" in out
    assert "    1.20s  FailingFlow/2/boom (1 task, failed)" in out
    assert "    1.00s  FailingFlow/2/start (1 task)" in out
