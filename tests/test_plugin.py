"""Registration, options, laziness, report sections."""

from __future__ import annotations

import pytest


def test_loading_the_plugin_does_not_import_metaflow(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sys

        def test_not_imported(request):
            assert request.config.pluginmanager.has_plugin("metaflow")
            assert "metaflow" not in sys.modules
        """
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_fixtures_exist_and_can_be_disabled(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(runner, runner_factory, metaflow_store): pass")
    pytester.runpytest_subprocess().assert_outcomes(passed=1)
    result = pytester.runpytest_subprocess("-p", "no:metaflow")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'runner' not found*"])


def test_help_lists_options_with_ini_twins(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "*testing Metaflow flows (pytest-metaflow)*",
            "*--metaflow-show-output*",
            "*--metaflow-pylint*",
            "*--metaflow-use-config*",
        ]
    )
    result.stdout.fnmatch_lines(["*metaflow_show_output (bool)*", "*metaflow_pylint (bool)*"])


def test_report_header(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--metaflow-pylint")
    result.stdout.fnmatch_lines(
        [
            "metaflow: 2.*, hermetic local store per test, pylint on, show output off, run timeout 3600 s",
            "metaflow: collect flows *",
            "metaflow: remote decorators (@kubernetes, @batch) run locally",
        ]
    )


def test_report_section_lists_every_run_of_a_failed_test(flow_pytester: pytest.Pytester) -> None:
    flow_pytester.makepyfile(
        """
        def test_two_runs(runner):
            runner("hello.py").run()
            runner("failing.py").run()
            assert False, "the test itself failed"

        def test_passing(runner):
            runner("hello.py").run()
        """
    )
    result = flow_pytester.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- metaflow runs -*",
            "run HelloFlow/* is successful",
            "run FailingFlow/* is failed",
            "step 'boom' failed (task FailingFlow/*/boom/*): ValueError: bad alpha 42",
            "  stderr of FailingFlow/*/boom/*:",
            "*boom stderr line",
        ]
    )
    assert result.stdout.str().count("- metaflow runs -") == 1


def test_pylint_option_turns_lint_back_on(flow_pytester: pytest.Pytester) -> None:
    pytest.importorskip("pylint", reason="pylint is not installed")
    flow_pytester.makepyfile(
        """
        def test_it(runner, pytestconfig):
            linted = "pylint" in runner("hello.py").run().stderr.lower()
            assert linted == bool(pytestconfig.getoption("metaflow_pylint"))
        """
    )
    flow_pytester.runpytest_subprocess("--metaflow-pylint").assert_outcomes(passed=1)
    flow_pytester.runpytest_subprocess().assert_outcomes(passed=1)
