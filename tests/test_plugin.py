"""Registration, options, laziness, report sections."""

from __future__ import annotations

import json

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


# What loading the plugin imports of pytest_metaflow in a session that uses none of it: what
# registering its options, ini keys, markers, hooks and fixtures needs, no more. Every pytest
# process pays for these (xdist: each worker too); the rest is imported when a test uses it.
LOADED_AT_START = {
    "pytest_metaflow",
    "pytest_metaflow.plugin",
    "pytest_metaflow._settings",
    "pytest_metaflow._launcher",  # --metaflow-launcher's help and default
    "pytest_metaflow.fixtures",
    "pytest_metaflow._s3plugin",
    "pytest_metaflow._snapshot_hooks",
}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-q"], LOADED_AT_START),
        ([], LOADED_AT_START | {"pytest_metaflow._processes"}),  # the report header names the process backend
    ],
    ids=["quiet", "header"],
)
def test_loading_the_plugin_imports_few_modules(pytester: pytest.Pytester, args: list[str], expected: set[str]) -> None:
    """A subprocess of its own: the modules other tests imported do not count."""
    pytester.makeconftest(
        """
        import json, sys

        def pytest_unconfigure(config):
            names = sorted(n for n in sys.modules if n.split(".")[0] in ("pytest_metaflow", "metaflow", "syrupy"))
            with open("modules.json", "w") as f:
                json.dump(names, f)
        """
    )
    pytester.makepyfile("def test_trivial(request):\n    assert request.config.pluginmanager.has_plugin('metaflow')\n")
    # syrupy is a pytest plugin of its own: disabled, so that only our imports of it would show.
    pytester.runpytest_subprocess("-p", "no:syrupy", *args).assert_outcomes(passed=1)
    imported = set(json.loads((pytester.path / "modules.json").read_text()))
    assert imported == expected


def test_the_package_exports_every_public_name_on_first_access() -> None:
    import pytest_metaflow
    from pytest_metaflow import _s3plugin, _s3server, _s3store, _store

    for name in pytest_metaflow.__all__:
        assert getattr(pytest_metaflow, name) is not None, name
        assert name in dir(pytest_metaflow)
    assert pytest_metaflow.MetaflowStore is _store.Store
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pytest_metaflow.nope  # noqa: B018
    # Copies kept where the plugin's load reads them without importing their module.
    assert _s3plugin._S3_STATE_FILE == _s3server.STATE_FILE
    assert _s3plugin.LOCAL == _s3store.LOCAL


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
