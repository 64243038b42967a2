"""Runs that would never end are bounded (issues 10.17, 11.3)."""

from __future__ import annotations

import pytest

INI = "[pytest]\naddopts = -p no:cacheprovider\nasyncio_default_fixture_loop_scope = function\n"


def test_step_reading_stdin_gets_eof_instead_of_hanging(flow_pytester: pytest.Pytester) -> None:
    flow_pytester.makepyfile(
        """
        from pytest_metaflow import assert_run_failed, assert_log_contains

        def test_stdin(runner):
            result = runner("stdin_reader.py").run()
            assert_run_failed(result, step="start", exception="EOFError")
            assert_log_contains(result, "asking for a name", step="start")
        """
    )
    # pytest-timeout as a safety net: without the fix this test would hang for the run timeout.
    result = flow_pytester.runpytest_subprocess("--timeout=600")
    result.assert_outcomes(passed=1)


def test_default_run_timeout_is_shown_and_can_be_turned_off(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    result = pytester.runpytest("--co")
    result.stdout.fnmatch_lines(["metaflow: *, run timeout 3600 s"])
    result = pytester.runpytest("--co", "--metaflow-timeout=0")
    result.stdout.fnmatch_lines(["metaflow: *, no run timeout"])
    pytester.makeini(INI + "metaflow_timeout = 0\n")
    result = pytester.runpytest("--co")
    result.stdout.fnmatch_lines(["metaflow: *, no run timeout"])


def test_blocked_step_ends_with_its_last_output(flow_pytester: pytest.Pytester) -> None:
    # A generous timeout: under load the step may need a while to print its line.
    flow_pytester.makeini(INI + "metaflow_timeout = 90\n")
    flow_pytester.makepyfile(
        """
        def test_blocked(runner):
            runner("blocked.py").run()
        """
    )
    result = flow_pytester.runpytest_subprocess("--timeout=600")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*RunTimeoutError: run BlockedFlow/* timed out after 90 s*",
            "*step 'start' was running (task BlockedFlow/*/start/1); its output:",
            "*waiting for an endpoint that never answers",
        ]
    )
