"""What a user reads when something fails: short, saying what happened, no plugin frames.

Each test runs a real pytest session on real flows (``runpytest_subprocess``).
"""

from __future__ import annotations

import re

import pytest

YAML_OK = ("-W", "ignore:The _yaml extension module:DeprecationWarning")  # Metaflow's vendored yaml (issue 10.6)


def test_array_mismatch_is_short_and_hides_the_helpers_frames(flow_pytester: pytest.Pytester) -> None:
    flow_pytester.makepyfile(
        """
        import numpy as np
        from pytest_metaflow import assert_artifacts

        def test_matrix(runner):
            result = runner("arrays.py").run()
            wrong = np.arange(6, dtype="float64").reshape(2, 3) / 10
            wrong[0, 1] = 7.0
            assert_artifacts(result, matrix=wrong, labels=np.array([1, 2, 3]))
        """
    )
    result = flow_pytester.runpytest_subprocess(*YAML_OK)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E*AssertionError: artifacts of ArraysFlow/*/end/* differ:",
            "E*matrix: arrays differ; first at index (0, 1): expected 7.0, got 0.1:",
            "*Mismatched elements: 1 / 6*",
            "E*artifacts that exist: frame, labels, matrix, name, nested, series",
        ]
    )
    out = result.stdout.str()
    result.stdout.no_fnmatch_line("*pytest_metaflow/assertions.py*")
    result.stdout.no_fnmatch_line("*pytest_metaflow/_compare.py*")
    failure = out[out.index("___ test_matrix ___") : out.index("short test summary")]
    assert len(failure.splitlines()) < 45, failure


def test_failing_spin_says_the_step_failed_with_its_exception(flow_pytester: pytest.Pytester) -> None:
    flow_pytester.makepyfile(
        """
        def test_spin(runner):
            r = runner("failing.py")
            base = r.run()
            r.spin(base.run["boom"].task.pathspec)
        """
    )
    result = flow_pytester.runpytest_subprocess(*YAML_OK)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E*pytest_metaflow.errors.FlowStartError: the spun step 'boom' failed (spin of FailingFlow/*/boom/* in *failing.py):",
            "E*ValueError: bad alpha 42",
            """E*at File "*failing.py", line 15, in boom""",
        ]
    )
    result.stdout.no_fnmatch_line("*could not start the run*")
    result.stdout.no_fnmatch_line("E * Task failed.")


def test_truncated_log_is_named_and_verbose_tails_are_capped(flow_pytester: pytest.Pytester) -> None:
    flow_pytester.makepyfile(
        """
        import pytest
        from pytest_metaflow import assert_log_contains

        @pytest.fixture(scope="module")
        def chatty(runner_factory):
            return runner_factory("chatty.py")

        def test_truncated(chatty):
            result = chatty.run(max_log_size=1)  # MB: the step prints 1.6 MB
            assert_log_contains(result, "last line of start", step="start")

        def test_long_log(chatty):
            result = chatty.run()
            assert_log_contains(result, "never printed", step="start")
        """
    )
    result = flow_pytester.runpytest_subprocess("-v", *YAML_OK)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "E*AssertionError: 'last line of start' not found in the stdout of step 'start'; it ends with:",
            "*TRUNCATED - MAXIMUM LOG FILE SIZE REACHED*",
            "E*the log of ChattyFlow/*/start/* was truncated: it reached Metaflow's maximum log size*",
        ]
    )
    out = result.stdout.str()
    # Under -v a tail is 1000 lines, not the step's 30,002.
    assert re.search(r"\[\.\.\. 2900\d earlier lines; -vv shows all\]", out), out[-3000:]
    # Count in the failure sections only: on CI (CI=true) pytest prints each
    # exception message whole again in the short summary.
    failures = out.split("short test summary info")[0]
    assert failures.count("chatter ") < 2100
    assert "last line of start" in out  # the untruncated log's tail


def test_timed_out_run_has_its_duration_in_the_summary(flow_pytester: pytest.Pytester) -> None:
    flow_pytester.makepyfile(
        """
        import pytest

        @pytest.mark.metaflow(timeout=10)  # generous: the run must print before it is killed, even under load
        def test_slow(runner):
            runner("slow.py").run(seconds=60)
        """
    )
    result = flow_pytester.runpytest_subprocess("--metaflow-durations=0", *YAML_OK)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "1 flow run (1 timeout), *s of run time in total",
            "runs by duration:",
            "* SlowFlow/* timeout (unfinished: timed to its last output)  (test_*.py::test_slow)",
            "steps by duration:",
            "* SlowFlow/*/start (1 task, unfinished)",
        ]
    )
    line = next(line for line in result.stdout.lines if " timeout (unfinished" in line)
    assert float(line.split("s ")[0]) > 0, line  # was 0.00s: a killed run has no end time
