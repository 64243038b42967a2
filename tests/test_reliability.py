"""Run timeouts, no orphaned processes, no stray temp files, the leak guard, concurrency.

Every test runs a real pytest in a subprocess on flows copied into a directory
whose name holds a fresh uuid; a process "of this test" is one whose command
line contains that name (the Metaflow runtime, its tasks, and the helper that
``spawner.py`` starts in its own session), which is how a CI machine would find
leftovers. The inner pytest gets its own empty ``TMPDIR``: whatever is in it
afterwards was written outside pytest's basetemp.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import List

import pytest

from pytest_metaflow._processes import processes_with

FLOWS = Path(__file__).parent / "flows"
GONE_WITHIN = 20.0  # an upper bound to wait for, not a measured threshold


def wait_gone(tag: str) -> List[str]:
    deadline = time.monotonic() + GONE_WITHIN
    while processes_with(tag) and time.monotonic() < deadline:
        time.sleep(0.2)
    return processes_with(tag)


def wait_for(tag: str, needle: str, proc: "subprocess.Popen[bytes]") -> None:
    deadline = time.monotonic() + 120
    while not any(needle in p for p in processes_with(tag)):
        assert proc.poll() is None, "inner pytest ended before the flow got going"
        assert time.monotonic() < deadline, "the flow never got going"
        time.sleep(0.1)


class Tagged:
    """A pytester dir with the flows under ``<tag>/`` and an empty TMPDIR for the inner pytest."""

    def __init__(self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
        self.pytester = pytester
        self.tag = f"flows-{uuid.uuid4().hex}"
        (pytester.path / self.tag).mkdir()
        for flow in FLOWS.glob("*.py"):
            shutil.copy(flow, pytester.path / self.tag / flow.name)
        self.tmp = pytester.path / "tmpdir"
        self.tmp.mkdir()
        monkeypatch.setenv("TMPDIR", str(self.tmp))
        pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")

    def flow(self, name: str) -> str:
        return f"{self.tag}/{name}"

    def stray_files(self) -> List[str]:
        return sorted(str(p) for p in self.tmp.rglob("*"))

    def popen(self, *args: str, new_session: bool = False) -> "subprocess.Popen[bytes]":
        self.out = self.pytester.path / "inner-output.txt"
        with open(self.out, "wb") as out:
            return self.pytester.popen(
                [sys.executable, "-m", "pytest", f"--basetemp={self.pytester.path / 'basetemp'}", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=new_session,
            )

    def output(self) -> str:
        return self.out.read_text(errors="replace")


@pytest.fixture
def tagged(flow_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Tagged:
    return Tagged(flow_pytester, monkeypatch)


# -- run timeout ----------------------------------------------------------------


def test_marker_timeout_kills_blocking_run_and_names_running_step(tagged: Tagged) -> None:
    tagged.pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.metaflow(timeout=3)
        def test_slow(runner):
            runner("{tagged.flow('spawner.py')}").run(seconds=300)
        """
    )
    result = tagged.pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*RunTimeoutError: run SpawnerFlow/* timed out after 3 s*its processes were killed",
            "*step 'start' was running (task SpawnerFlow/*/start/1); its output:",
            "*helper started",
            "*metaflow runs*",
            "run SpawnerFlow/* is timeout",
        ]
    )
    assert wait_gone(tagged.tag) == []
    assert tagged.stray_files() == []


def test_timeout_result_status_logs_and_async(tagged: Tagged) -> None:
    tagged.pytester.makepyfile(
        f"""
        import asyncio
        import pytest
        from pytest_metaflow import RunTimeoutError

        @pytest.mark.metaflow(timeout=3)
        def test_blocking(runner):
            with pytest.raises(RunTimeoutError) as info:
                runner("{tagged.flow('slow.py')}").run(seconds=300)
            result = info.value.result
            assert result.status == "timeout"
            assert "sleeping" in result.stdout  # the partial log is kept

        @pytest.mark.metaflow(timeout=3)
        def test_async(runner):
            async def main():
                running = await runner("{tagged.flow('slow.py')}").async_run(seconds=300)
                with pytest.raises(RunTimeoutError, match="step 'start' was running"):
                    await running.wait()
                assert running.status == "timeout"
            asyncio.run(main())

        @pytest.mark.metaflow(timeout=0)  # no run timeout: Metaflow's own wait(timeout) acts
        def test_metaflow_wait_timeout_kills_whole_tree(runner):
            async def main():
                running = await runner("{tagged.flow('spawner.py')}").async_run(seconds=300)
                await running.wait(timeout=3)
                assert running.status == "timeout"
            asyncio.run(main())

        @pytest.mark.metaflow(timeout=60)
        def test_fast_run_unaffected(runner):
            assert runner("{tagged.flow('hello.py')}").run().status == "successful"
        """
    )
    # The option is overridden by the markers.
    result = tagged.pytester.runpytest_subprocess("--metaflow-timeout=3", "-v")
    result.assert_outcomes(passed=4)
    assert wait_gone(tagged.tag) == []


def test_ini_timeout_and_bad_values(tagged: Tagged) -> None:
    tagged.pytester.makepyfile(
        f"""
        import pytest
        from pytest_metaflow import RunTimeoutError

        def test_ini(runner):
            with pytest.raises(RunTimeoutError):
                runner("{tagged.flow('slow.py')}").run(seconds=300)

        @pytest.mark.metaflow(timeout="soon")
        def test_bad_marker(runner):
            pass
        """
    )
    tagged.pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\nmetaflow_timeout = 2\n")
    result = tagged.pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*metaflow(timeout=...) on *test_bad_marker*must be a number of seconds*'soon'*"])
    bad = tagged.pytester.runpytest_subprocess("--metaflow-timeout=-1")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--metaflow-timeout: the run timeout must be a number of seconds >= 0, got '-1'"])


def test_marker_and_options_are_documented(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.runpytest("--markers").stdout.fnmatch_lines(["@pytest.mark.metaflow(timeout=None*"])
    pytester.runpytest("--help").stdout.fnmatch_lines(
        ["*--metaflow-no-leak-guard*", "*--metaflow-timeout=SECONDS*", "*metaflow_timeout (*)*"]
    )


# -- no orphans, no stray files ---------------------------------------------------


@pytest.mark.parametrize("method", ["signal", "thread"])
def test_pytest_timeout_leaves_no_process_and_no_file(tagged: Tagged, method: str) -> None:
    tagged.pytester.makepyfile(
        f"""
        def test_slow(runner):
            runner("{tagged.flow('spawner.py')}").run(seconds=300)
        """
    )
    result = tagged.pytester.runpytest_subprocess("--timeout=4", f"--timeout-method={method}")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*Timeout*"])
    assert wait_gone(tagged.tag) == []
    assert tagged.stray_files() == []


def test_run_timeout_keeps_pytest_timeout_signal_alarm(tagged: Tagged) -> None:
    # Building the Runner arms SIGALRM for the flow import; pytest-timeout's own
    # alarm must still fire afterwards.
    tagged.pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.metaflow(timeout=300)
        @pytest.mark.timeout(4, method="signal")
        def test_slow(runner):
            runner("{tagged.flow('slow.py')}").run(seconds=300)
        """
    )
    result = tagged.pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Failed: Timeout (>4.0s) from pytest-timeout*"])
    assert wait_gone(tagged.tag) == []


def test_successful_run_helper_process_is_killed_at_teardown(tagged: Tagged) -> None:
    tagged.pytester.makepyfile(
        f"""
        def test_quick(runner):
            assert runner("{tagged.flow('spawner.py')}").run(seconds=0).status == "successful"
        """
    )
    tagged.pytester.runpytest_subprocess().assert_outcomes(passed=1)
    assert wait_gone(tagged.tag) == []


@pytest.mark.parametrize(
    "sig, group",
    [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, False), (signal.SIGKILL, False)],
    ids=["sigint-pytest", "ctrl-c-group", "sigterm", "sigkill"],
)
def test_signals_to_pytest_leave_nothing(tagged: Tagged, sig: int, group: bool) -> None:
    tagged.pytester.makepyfile(
        f"""
        def test_slow(runner):
            runner("{tagged.flow('spawner.py')}").run(seconds=300)

        def test_after():
            pass
        """
    )
    proc = tagged.popen("-v", new_session=group)
    try:
        wait_for(tagged.tag, "helper", proc)
        if group:  # what a terminal's Ctrl-C does: the whole foreground group
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if sig == signal.SIGINT:
        out = tagged.output()
        assert rc == pytest.ExitCode.INTERRUPTED, out
        assert "KeyboardInterrupt" in out and "test_after" not in out, out
    assert wait_gone(tagged.tag) == []
    assert tagged.stray_files() == []


# -- leak guard --------------------------------------------------------------------


def test_leak_guard_reports_bare_runner_leftovers(tagged: Tagged) -> None:
    tagged.pytester.makepyfile(
        f"""
        import asyncio
        from metaflow import Runner

        def test_bare_runner(runner):
            runner("{tagged.flow('hello.py')}").run()  # fixture runs leave nothing
            async def start():
                # a Runner made without the fixture: nobody stops its run
                return await Runner("{tagged.flow('slow.py')}", env={{"METAFLOW_USER": "x"}}).async_run(seconds=300)
            asyncio.run(start())

        def test_clean(runner):
            runner("{tagged.flow('hello.py')}").run()
        """
    )
    result = tagged.pytester.runpytest_subprocess()
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_bare_runner*",
            "*pytest-metaflow leak guard: the test's runs left behind",
            "*Metaflow run not started through the fixture, still running: pid *slow.py*",
            "*--metaflow-no-leak-guard turns this check off*",
        ]
    )
    for line in processes_with(tagged.tag):  # the bare run is ours to stop
        os.kill(int(line.split(":")[0]), signal.SIGKILL)
    off = tagged.pytester.runpytest_subprocess("--metaflow-no-leak-guard", "-k", "test_clean")
    off.assert_outcomes(passed=1)
    for line in processes_with(tagged.tag):
        os.kill(int(line.split(":")[0]), signal.SIGKILL)


# -- concurrency --------------------------------------------------------------------


def test_concurrent_async_runs_in_one_store(tagged: Tagged) -> None:
    tagged.pytester.makepyfile(
        f"""
        import asyncio
        from metaflow import Flow

        def test_many(runner):
            async def main():
                flow = "{tagged.flow('hello.py')}"
                running = await asyncio.gather(*(runner(flow).async_run(alpha=i) for i in range(4)))
                await asyncio.gather(*(r.wait() for r in running))
                return running
            running = asyncio.run(main())
            assert [r.status for r in running] == ["successful"] * 4
            ids = {{r.run.id for r in running}}
            assert len(ids) == 4
            assert sorted(r.run.data.x for r in running) == [1, 2, 3, 4]
            assert {{r.id for r in Flow("HelloFlow")}} == ids
        """
    )
    tagged.pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_xdist_sessions_do_not_collide(tagged: Tagged) -> None:
    tagged.pytester.makepyfile(
        f"""
        import pytest
        from metaflow import Flow

        @pytest.mark.parametrize("alpha", range(6))
        def test_hello(runner, alpha):
            result = runner("{tagged.flow('hello.py')}").run(alpha=alpha)
            assert result.run.data.x == alpha + 1
            assert [r.pathspec for r in Flow("HelloFlow")] == [result.run.pathspec]

        @pytest.mark.metaflow(timeout=2)
        @pytest.mark.parametrize("i", range(2))
        def test_timeout(runner, i):
            runner("{tagged.flow('spawner.py')}").run(seconds=300)
        """
    )
    result = tagged.pytester.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=6, failed=2)
    assert wait_gone(tagged.tag) == []
    assert tagged.stray_files() == []


def test_watchdog_cleans_up_after_os_exit(tmp_path: Path) -> None:
    """The watchdog on its own: an owner that dies by os._exit leaves nothing."""
    tag = f"watched-{uuid.uuid4().hex}"
    generated = tmp_path / "generated"
    generated.mkdir()
    (generated / "flow.py").write_text("# a generated flow file\n")
    owner = f"""
import os, subprocess, sys
from pytest_metaflow import _processes

watchdog = _processes.Watchdog()
token = _processes.new_token()
env = dict(os.environ, PYTEST_METAFLOW_TOKEN=token + "/1")
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", {tag!r}],
                 env=env, start_new_session=True)
watchdog.add_token(token)
watchdog.add_path({str(generated)!r})
os._exit(0)
"""
    subprocess.run([sys.executable, "-c", owner], check=True, timeout=60)
    assert wait_gone(tag) == []
    deadline = time.monotonic() + GONE_WITHIN
    while generated.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not generated.exists()
