"""Coverage of step code: measured with `coverage run`, with pytest-cov, and under xdist.

Each test runs a real pytest, under real coverage, in a subprocess, on
``branching.py``: its ``start`` step takes one side of an ``if`` depending on
a parameter, so the coverage data must show exactly that side as executed.
"""

from __future__ import annotations

import json
import sys

import pytest

TEST_LEFT = """
def test_left(runner):
    assert runner("branching.py").run(mode="left").status == "successful"
"""
# A second flow test, so that both xdist workers run a flow.
TEST_HELLO = """
def test_hello(runner):
    assert runner("hello.py").run().status == "successful"
"""


@pytest.fixture(autouse=True)
def _no_outer_coverage(monkeypatch: pytest.MonkeyPatch) -> None:
    # Coverage measuring this suite's own processes must not leak into the inner pytest.
    for var in ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START", "COV_CORE_SOURCE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def cov_pytester(flow_pytester: pytest.Pytester) -> pytest.Pytester:
    flow_pytester.makepyfile(test_left=TEST_LEFT, test_hello=TEST_HELLO)
    return flow_pytester


def _lines(pytester: pytest.Pytester, flow: str, *needles: str) -> list[int]:
    text = (pytester.path / flow).read_text().splitlines()
    return [next(i for i, line in enumerate(text, 1) if needle in line) for needle in needles]


def _measured(pytester: pytest.Pytester, report: str, flow: str) -> dict[str, set[int]]:
    files = json.loads((pytester.path / report).read_text())["files"]
    data = next(v for k, v in files.items() if k.endswith(flow))
    return {"executed": set(data["executed_lines"]), "missing": set(data["missing_lines"])}


def _assert_only_left_side(pytester: pytest.Pytester, report: str) -> None:
    measured = _measured(pytester, report, "branching.py")
    left, right, end = _lines(pytester, "branching.py", '"went left"', '"went right"', "print(self.side)")
    cond, other = _lines(pytester, "branching.py", 'if self.mode == "left"', "self.next(self.end)")
    assert {cond, left, other, end} <= measured["executed"], measured
    assert right in measured["missing"], measured


def _run(pytester: pytest.Pytester, *args: str) -> None:
    result = pytester.run(sys.executable, *args)
    assert result.ret == 0, result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_coverage_run_measures_steps(cov_pytester: pytest.Pytester, xdist: list[str]) -> None:
    source = f"--source={cov_pytester.path}"
    _run(cov_pytester, "-m", "coverage", "run", source, "-m", "pytest", "-p", "no:cov", *xdist)
    # Flow processes write parallel data files; --append keeps pytest's own .coverage.
    _run(cov_pytester, "-m", "coverage", "combine", "--append")
    _run(cov_pytester, "-m", "coverage", "json", "-o", "cov.json")
    _assert_only_left_side(cov_pytester, "cov.json")
    # pytest's own data is still there: the test file's body ran in pytest.
    assert (
        _lines(cov_pytester, "test_left.py", "assert runner")[0]
        in _measured(cov_pytester, "cov.json", "test_left.py")["executed"]
    )


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_pytest_cov_measures_steps(cov_pytester: pytest.Pytester, xdist: list[str]) -> None:
    # pytest-cov combines the flow processes' data files by itself.
    _run(cov_pytester, "-m", "pytest", f"--cov={cov_pytester.path}", "--cov-report=json:cov.json", *xdist)
    _assert_only_left_side(cov_pytester, "cov.json")
    assert not list(cov_pytester.path.glob(".coverage.*")), "data files left uncombined"


def test_user_patch_subprocess_config_is_used_as_is(cov_pytester: pytest.Pytester) -> None:
    cov_pytester.path.joinpath(".coveragerc").write_text(
        f"[run]\npatch = subprocess\nsource = {cov_pytester.path}\nbranch = true\n"
    )
    _run(cov_pytester, "-m", "coverage", "run", "-m", "pytest", "-p", "no:cov")
    _run(cov_pytester, "-m", "coverage", "combine")
    _run(cov_pytester, "-m", "coverage", "json", "-o", "cov.json")
    _assert_only_left_side(cov_pytester, "cov.json")
    files = json.loads((cov_pytester.path / "cov.json").read_text())["files"]
    assert any(v.get("missing_branches") for k, v in files.items() if k.endswith("branching.py")), "branch=true lost"


def test_nothing_happens_without_coverage(flow_pytester: pytest.Pytester) -> None:
    flow_pytester.makepyfile(
        """
        import sys

        def test_no_coverage(runner, metaflow_store):
            assert "COVERAGE_PROCESS_CONFIG" not in metaflow_store.env()
            assert runner("hello.py").run().status == "successful"
            assert "coverage" not in sys.modules, "the plugin imported coverage"
        """
    )
    result = flow_pytester.runpytest_subprocess("-p", "no:cov")
    result.assert_outcomes(passed=1)
    assert not list(flow_pytester.path.glob(".coverage*"))


CHILD_ENV_SCRIPT = """
import json, os, coverage
from coverage.config import CoverageConfig
from pytest_metaflow import _coverage

assert _coverage.child_env() == {}
cov = coverage.Coverage(data_file="cov-data", source=[os.getcwd()], omit=["*/skip_*"], branch=True)
cov.start()
env = _coverage.child_env()
cov.stop()
config = CoverageConfig.deserialize(env[_coverage.CONFIG_VAR])
print(json.dumps([config.parallel, config.branch, config.data_file, config.source, config.run_omit]))
"""


def test_child_env_carries_the_active_configuration(pytester: pytest.Pytester) -> None:
    result = pytester.run(sys.executable, "-c", CHILD_ENV_SCRIPT)
    assert result.ret == 0, result.stderr.str()
    here = str(pytester.path)
    assert json.loads(result.stdout.lines[-1]) == [True, True, here + "/cov-data", [here], ["*/skip_*"]]
