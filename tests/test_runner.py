"""The runner fixture on real flows, through a real pytest subprocess."""

from __future__ import annotations

import pytest


def test_run_and_helpers_pass(flow_pytester: pytest.Pytester) -> None:
    flow_pytester.makepyfile(
        """
        from metaflow import Flow
        from pytest_metaflow import assert_run_succeeded, assert_artifacts, assert_log_contains

        def test_hello(runner):
            result = runner("hello.py").run(alpha=3)
            assert_run_succeeded(result)
            assert result.status == "successful" and result.returncode == 0
            assert_artifacts(result, step="start", x=4)
            assert_log_contains(result, "hello from start", step="start")
            assert Flow("HelloFlow").latest_run.pathspec == result.run.pathspec
            assert result.run.data.x == 4
        """
    )
    result = flow_pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert not (flow_pytester.path / ".metaflow").exists()


def test_failing_run_report_names_step_and_exception(flow_pytester: pytest.Pytester) -> None:
    flow_pytester.makepyfile(
        """
        from pytest_metaflow import assert_run_succeeded

        def test_fail(runner):
            assert_run_succeeded(runner("failing.py").run())
        """
    )
    result = flow_pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*expected a successful run, but run FailingFlow/* is failed",
            "*step 'boom' failed (task FailingFlow/*/boom/*): ValueError: bad alpha 42",
            "*metaflow runs*",
            "run FailingFlow/* is failed",
        ]
    )
    result.stdout.no_fnmatch_line("*pytest_metaflow/assertions.py*")


@pytest.mark.parametrize("user_imports_metaflow", [False, True], ids=["plugin-import", "test-imports-metaflow"])
def test_vendored_yaml_warning_does_not_fail_strict_suites(
    flow_pytester: pytest.Pytester, user_imports_metaflow: bool
) -> None:
    """With PyYAML installed, Metaflow's vendored yaml warns DeprecationWarning on import (issue 10.6)."""
    pytest.importorskip("yaml")  # the warning only exists when PyYAML provides the `_yaml` shim
    flow_pytester.makeini(
        "[pytest]\naddopts = -p no:cacheprovider\nasyncio_default_fixture_loop_scope = function\nfilterwarnings = error\n"
    )
    head = "from metaflow import Flow\n" if user_imports_metaflow else ""
    flow_pytester.makepyfile(
        head
        + """
def test_hello(runner, metaflow_store):
    result = runner("hello.py").run()
    assert result.run.data.x == 2
"""
    )
    result = flow_pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*DeprecationWarning*")
