"""Bad input, seen as a user sees it: through a real pytest run, never hanging.

(Direct checks of each error message are in test_errors.py.)

Each case runs in a real pytest subprocess with a run timeout as a safety net
(``--metaflow-timeout``) and pytest-timeout as a second one: a hang shows up as
a timeout failure, not as a stuck suite. (A non-FlowSpec passed to ``nbrunner``
is covered with the nbrunner fixture.)
"""

from __future__ import annotations

import textwrap

import pytest

NO_HANG = ("--metaflow-timeout=60", "--timeout=120")

GRAPH_ERROR = """
from metaflow import FlowSpec, step

class GraphFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1

    @step
    def end(self):
        pass

if __name__ == "__main__":
    GraphFlow()
"""

# Sleeps at import only in the Metaflow process (which carries the plugin's
# token), as a flow waiting for an unavailable resource at module level would.
HANGS_IN_CHILD = """
import os, time
from metaflow import FlowSpec, step

if os.environ.get("PYTEST_METAFLOW_TOKEN"):
    time.sleep(600)

class HangFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    HangFlow()
"""

HANGS_EVERYWHERE = HANGS_IN_CHILD.replace('if os.environ.get("PYTEST_METAFLOW_TOKEN"):\n    ', "")


def run_case(pytester: pytest.Pytester, body: str, *args: str, **files: str) -> pytest.RunResult:
    for name, source in files.items():
        pytester.makepyfile(**{name: source})
    pytester.makepyfile(test_case=textwrap.dedent(body))
    return pytester.runpytest_subprocess(*NO_HANG, *args)


def test_graph_error(flow_pytester: pytest.Pytester) -> None:
    result = run_case(flow_pytester, "def test_it(runner):\n    runner('graph.py').run()\n", graph=GRAPH_ERROR)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*FlowStartError: Metaflow could not start the run of *graph.py:",
            "*Validity checker found an issue in file *graph.py on line *:",
            "*Step start is missing a self.next() transition*",
        ]
    )


@pytest.mark.parametrize(
    "call, expected",
    [
        ("run(nope=1)", "*ValueError: *hello.py: Unknown argument: 'nope', possible args are: alpha*"),
        ("run(alpha='many')", "*TypeError: *hello.py: Invalid type for 'alpha'*found 'many'"),
    ],
    ids=["unknown-parameter", "wrong-type"],
)
def test_bad_parameters_keep_cwd(flow_pytester: pytest.Pytester, call: str, expected: str) -> None:
    body = f"""
        import os
        import pytest

        def test_it(runner, tmp_path):
            cwd = os.getcwd()
            try:
                runner("hello.py", cwd=str(tmp_path)).{call}
            finally:
                assert os.getcwd() == cwd  # Metaflow's with_dir() left it changed
        """
    result = run_case(flow_pytester, body)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([expected])
    result.stdout.no_fnmatch_line("*typeguard*")
    result.stdout.no_fnmatch_line("*AssertionError*")


def test_resume_with_nothing_to_resume(flow_pytester: pytest.Pytester) -> None:
    result = run_case(flow_pytester, "def test_it(runner):\n    runner('hello.py').resume()\n")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*FlowStartError: Metaflow could not start the run of *hello.py:", "*A previous run id was not found*"]
    )


def test_flow_hanging_at_import_in_metaflow_process(flow_pytester: pytest.Pytester) -> None:
    body = """
        import pytest

        @pytest.mark.metaflow(timeout=3)
        def test_run_timeout(runner):
            runner("hang.py").run()

        def test_file_read_timeout(runner):
            runner("hang.py", file_read_timeout=3).run()
        """
    result = run_case(flow_pytester, body, hang=HANGS_IN_CHILD)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*RunTimeoutError: the run of *hang.py timed out after 3 s*its processes were killed",
            "*the Metaflow process printed nothing in 3 s, not even its banner: it was still starting*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*FlowStartError: Metaflow did not start the run of *hang.py within file_read_timeout=3 s*",
            "*no output: did the flow file get stuck at import*",
        ]
    )
    result.stdout.no_fnmatch_line("*Timeout (0:02:00)*")


def test_flow_hanging_at_import_in_pytest(flow_pytester: pytest.Pytester) -> None:
    # Runner() imports the flow file in the pytest process itself.
    body = """
        import pytest

        @pytest.mark.metaflow(timeout=3)
        def test_it(runner):
            runner("hang.py")
        """
    result = run_case(flow_pytester, body, hang=HANGS_EVERYWHERE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*RunTimeoutError: importing the flow file *hang.py took more than the run timeout of 3 s*"]
    )
