"""``@kubernetes``/``@batch`` steps in hermetic tests: ``--metaflow-remote`` (issue 10.11)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

REMOTE_TEST = """
from pytest_metaflow import assert_run_succeeded, assert_artifacts

def test_remote(runner):
    result = runner("remote.py").run()
    assert_run_succeeded(result)
    assert_artifacts(result, step="start", where="local", attempts=2)
    assert_artifacts(result, score=0.9)
"""


def test_remote_steps_run_locally_by_default(flow_pytester: pytest.Pytester) -> None:
    flow_pytester.makepyfile(REMOTE_TEST)
    result = flow_pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["metaflow: remote decorators (@kubernetes, @batch) run locally"])


@pytest.mark.parametrize(
    "how",
    ["--metaflow-remote=keep", "ini", "argument"],
)
def test_keep_leaves_remote_decorators_alone(flow_pytester: pytest.Pytester, how: str) -> None:
    args = []
    call = 'runner("remote.py")'
    if how == "ini":
        flow_pytester.makeini(
            "[pytest]\naddopts = -p no:cacheprovider\nasyncio_default_fixture_loop_scope = function\nmetaflow_remote = keep\n"
        )
    elif how == "argument":
        call = 'runner("remote.py", remote="keep")'
    else:
        args = [how]
    flow_pytester.makepyfile(
        f"""
        import pytest
        from pytest_metaflow import FlowStartError

        def test_keep(runner):
            with pytest.raises(FlowStartError, match=r"(?s)could not start.*@kubernetes decorator requires --datastore=s3.*\\nhint: --metaflow-remote=local"):
                {call}.run()
        """
    )
    result = flow_pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=1)
    if how != "argument":
        result.stdout.fnmatch_lines(
            ["metaflow: remote decorators (@kubernetes, @batch) kept (need your remote compute)"]
        )


def test_remote_argument_overrides_option(flow_pytester: pytest.Pytester) -> None:
    flow_pytester.makepyfile(REMOTE_TEST.replace('runner("remote.py")', 'runner("remote.py", remote="local")'))
    result = flow_pytester.runpytest_subprocess("--metaflow-remote=keep")
    result.assert_outcomes(passed=1)


def test_bad_remote_values(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--metaflow-remote=cloud")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--metaflow-remote: expected one of local, keep, got 'cloud'"])
    pytester.makepyfile(
        """
        import pytest

        def test_bad(runner):
            with pytest.raises(ValueError, match="remote: expected one of local, keep, got 'k8s'"):
                runner("hello.py", remote="k8s")
        """
    )
    (pytester.path / "hello.py").write_text((Path(__file__).parent / "flows" / "hello.py").read_text())
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)


def test_tutorial_hello_cloud_runs_locally(pytester: pytest.Pytester) -> None:
    """Metaflow's own Kubernetes tutorial, unchanged."""
    spec = importlib.util.find_spec("metaflow")
    assert spec is not None and spec.submodule_search_locations
    flow = Path(list(spec.submodule_search_locations)[0]) / "tutorials" / "05-hello-cloud" / "hello-cloud.py"
    shutil.copy(flow, pytester.path / "hello_cloud.py")
    pytester.makepyfile(
        """
        from pytest_metaflow import assert_artifacts, assert_log_contains, assert_run_succeeded

        def test_hello_cloud(runner):
            result = runner("hello_cloud.py").run()
            assert_run_succeeded(result)
            assert_artifacts(result, step="hello", message="Hi from the cloud!")
            assert_log_contains(result, "Metaflow says: Hi from the cloud!", step="hello")
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)


def test_pypi_flow_says_what_it_needs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        pypi_flow="""
        from metaflow import FlowSpec, pypi, step

        class PypiFlow(FlowSpec):
            @pypi(packages={"requests": "2.32.3"})
            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass

        if __name__ == "__main__":
            PypiFlow()
        """,
        test_pypi="""
        import pytest
        from pytest_metaflow import FlowStartError

        def test_pypi(runner):
            with pytest.raises(FlowStartError, match=r'(?s)@pypi decorator requires --environment=.*hint: @conda/@pypi steps need runner\\(\\.\\.\\., environment="conda"\\)'):
                runner("pypi_flow.py").run()
        """,
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
