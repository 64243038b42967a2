"""Options read the way users write them: numbers in pytest 9's ``[tool.pytest]`` table,
``--metaflow-show-output`` without ``-s``."""

from __future__ import annotations

import pytest

PYPROJECT = """
[tool.pytest]
metaflow_timeout = {timeout}
metaflow_durations = 3
metaflow_show_output = true
asyncio_default_fixture_loop_scope = "function"
"""

needs_native_toml = pytest.mark.skipif(
    int(pytest.__version__.split(".")[0]) < 9, reason="the [tool.pytest] table is read by pytest >= 9"
)


@needs_native_toml
def test_numbers_in_the_tool_pytest_table(pytester: pytest.Pytester) -> None:
    (pytester.path / "tox.ini").unlink(missing_ok=True)
    pytester.makepyprojecttoml(PYPROJECT.format(timeout=600))
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "metaflow: *, show output on, run timeout 600 s",
            "metaflow: collect flows off, keep stores none, durations 3",
        ]
    )


@needs_native_toml
def test_a_bad_number_in_the_tool_pytest_table_names_the_option(pytester: pytest.Pytester) -> None:
    (pytester.path / "tox.ini").unlink(missing_ok=True)
    pytester.makepyprojecttoml(PYPROJECT.format(timeout='"soon"'))
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.stderr.fnmatch_lines(
        ["*ini option metaflow_timeout: the run timeout must be a number of seconds >= 0, got 'soon'*"]
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_numbers_as_strings_in_an_ini_file(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nmetaflow_timeout = 90\nmetaflow_durations = 0\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["metaflow: *, run timeout 90 s", "metaflow: *, durations 0"])


def test_show_output_streams_without_dash_s(flow_pytester: pytest.Pytester) -> None:
    flow_pytester.makepyfile(
        test_it="""
        def test_hello(runner):
            print("the test's own print")
            assert runner("hello.py").run().status == "successful"
        """
    )
    result = flow_pytester.runpytest_subprocess("--metaflow-show-output")
    result.assert_outcomes(passed=1)
    # A passing test's captured output is never shown: these lines were streamed live.
    result.stdout.fnmatch_lines(["*hello from start*", "*done 2*"])
    result = flow_pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*hello from start*")
