"""Run timeouts, no orphaned processes, no stray files, the leak guard, concurrency.

Every test runs a real pytest in a subprocess on flows copied into a directory
whose name holds a fresh uuid (the *tag*). A process left by the inner session
is counted three ways (:class:`tests.census.Census`): by **descent** (this process becomes a
child subreaper, so every orphan of the inner session is re-parented to it and
stays its descendant), by a **marker** in the environment the inner session
starts with, and by the tag in its **command line**. Files are counted by
scanning the inner session's cwd, the flows' directory, its ``TMPDIR`` and its
``HOME`` (both private and empty): whatever appears there was written outside
pytest's basetemp.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_metaflow import _launcher, _processes
from pytest_metaflow._processes import processes_with

from .census import Census, proc_table

FLOWS = Path(__file__).parent / "flows"
GONE_WITHIN = 20.0  # an upper bound to wait for, not a measured threshold
MARKER = "PMF_SELFTEST_CENSUS"


def wait_gone(tag: str) -> list[str]:
    deadline = time.monotonic() + GONE_WITHIN
    while processes_with(tag) and time.monotonic() < deadline:
        time.sleep(0.2)
    return processes_with(tag)


def wait_for(tag: str, needle: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while not any(needle in p for p in processes_with(tag)):
        assert proc.poll() is None, "inner pytest ended before the flow got going"
        assert time.monotonic() < deadline, "the flow never got going"
        time.sleep(0.1)


class Tagged:
    """A pytester dir with the flows under ``<tag>/``, an empty TMPDIR and HOME for the inner pytest."""

    def __init__(self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
        self.pytester = pytester
        self.tag = f"flows-{uuid.uuid4().hex}"
        (pytester.path / self.tag).mkdir()
        for flow in FLOWS.glob("*.py"):
            shutil.copy(flow, pytester.path / self.tag / flow.name)
        self.tmp = pytester.path / "tmpdir"
        self.tmp.mkdir()
        self.home = pytester.path / "home"
        self.home.mkdir()
        monkeypatch.setenv("TMPDIR", str(self.tmp))
        monkeypatch.setenv("HOME", str(self.home))
        pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
        monkeypatch.setenv(MARKER, self.tag)
        try:
            self.census = Census(self.tag, MARKER)
        except OSError:
            pytest.skip("needs a Linux child subreaper to count leftovers by descent")
        self.cwd_files = set(os.listdir(pytester.path))
        self.flow_files = set(os.listdir(pytester.path / self.tag))

    def flow(self, name: str) -> str:
        return f"{self.tag}/{name}"

    def stray_files(self) -> list[str]:
        """Files in TMPDIR, HOME, new ones in the flows' directory and in the cwd (but for basetemp and pytester's own)."""
        found = [str(p) for p in self.tmp.rglob("*")] + [str(p) for p in self.home.rglob("*")]
        found += [
            str(self.pytester.path / self.tag / n)
            for n in set(os.listdir(self.pytester.path / self.tag)) - self.flow_files
        ]
        own = self.cwd_files | {"basetemp", "inner-output.txt", "tox.ini", "pytest.ini", "setup.cfg"}
        found += [
            str(p)
            for p in self.pytester.path.iterdir()
            if p.name not in own
            and not p.name.startswith("runpytest-")
            and p.name not in ("stdout", "stderr")
            and not (p.suffix == ".py" and p.name.startswith(("test_", "conftest")))
            and p.suffix != ".ipynb"
        ]
        return sorted(found)

    def leftovers(self) -> list[str]:
        return self.census.leftovers(GONE_WITHIN)

    def popen(self, *args: str, new_session: bool = False) -> subprocess.Popen[bytes]:
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
def tagged(flow_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tagged]:
    tagged = Tagged(flow_pytester, monkeypatch)
    yield tagged
    tagged.census.kill_leftovers()
    tagged.census.close()


# -- run timeout ----------------------------------------------------------------


def test_marker_timeout_kills_blocking_run_and_names_running_step(tagged: Tagged) -> None:
    tagged.pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.metaflow(timeout=10)  # generous: the step must print first, under load
        def test_slow(runner):
            runner("{tagged.flow("spawner.py")}").run(seconds=300)
        """
    )
    result = tagged.pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*RunTimeoutError: run SpawnerFlow/* timed out after 10 s*its processes were killed",
            "*step 'start' was running (task SpawnerFlow/*/start/1); its output:",
            "*helper started",
            "*metaflow runs*",
            "run SpawnerFlow/* is timeout",
        ]
    )
    assert tagged.leftovers() == []
    assert tagged.stray_files() == []


def test_timeout_result_status_logs_and_async(tagged: Tagged) -> None:
    tagged.pytester.makepyfile(
        f"""
        import asyncio
        import pytest
        from pytest_metaflow import RunTimeoutError

        @pytest.mark.metaflow(timeout=10)  # generous: the step must print first, under load
        def test_blocking(runner):
            with pytest.raises(RunTimeoutError) as info:
                runner("{tagged.flow("slow.py")}").run(seconds=300)
            result = info.value.result
            assert result.status == "timeout"
            assert "sleeping" in result.stdout  # the partial log is kept

        @pytest.mark.metaflow(timeout=10)
        def test_async(runner):
            async def main():
                running = await runner("{tagged.flow("slow.py")}").async_run(seconds=300)
                with pytest.raises(RunTimeoutError, match="step 'start' was running"):
                    await running.wait()
                assert running.status == "timeout"
            asyncio.run(main())

        @pytest.mark.metaflow(timeout=0)  # no run timeout: Metaflow's own wait(timeout) acts
        def test_metaflow_wait_timeout_kills_whole_tree(runner):
            async def main():
                running = await runner("{tagged.flow("spawner.py")}").async_run(seconds=300)
                await running.wait(timeout=3)
                assert running.status == "timeout"
            asyncio.run(main())

        @pytest.mark.metaflow(timeout=60)
        def test_fast_run_unaffected(runner):
            assert runner("{tagged.flow("hello.py")}").run().status == "successful"
        """
    )
    # The option is overridden by the markers.
    result = tagged.pytester.runpytest_subprocess("--metaflow-timeout=3", "-v")
    result.assert_outcomes(passed=4)
    assert tagged.leftovers() == []


def test_ini_timeout_and_bad_values(tagged: Tagged) -> None:
    tagged.pytester.makepyfile(
        f"""
        import pytest
        from pytest_metaflow import RunTimeoutError

        def test_ini(runner):
            with pytest.raises(RunTimeoutError):
                runner("{tagged.flow("slow.py")}").run(seconds=300)

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
            runner("{tagged.flow("spawner.py")}").run(seconds=300)
        """
    )
    result = tagged.pytester.runpytest_subprocess("--timeout=4", f"--timeout-method={method}")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*Timeout*"])
    assert tagged.leftovers() == []
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
            runner("{tagged.flow("slow.py")}").run(seconds=300)
        """
    )
    result = tagged.pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Failed: Timeout (>4.0s) from pytest-timeout*"])
    assert tagged.leftovers() == []


def test_successful_run_helper_process_is_killed_at_teardown(tagged: Tagged) -> None:
    tagged.pytester.makepyfile(
        f"""
        def test_quick(runner):
            assert runner("{tagged.flow("spawner.py")}").run(seconds=0).status == "successful"
        """
    )
    tagged.pytester.runpytest_subprocess().assert_outcomes(passed=1)
    assert tagged.leftovers() == []


@pytest.mark.parametrize(
    "sig, group",
    [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, False), (signal.SIGKILL, False)],
    ids=["sigint-pytest", "ctrl-c-group", "sigterm", "sigkill"],
)
def test_signals_to_pytest_leave_nothing(tagged: Tagged, sig: int, group: bool) -> None:
    tagged.pytester.makepyfile(
        f"""
        def test_slow(runner):
            runner("{tagged.flow("spawner.py")}").run(seconds=300)

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
    assert tagged.leftovers() == []
    assert tagged.stray_files() == []


# -- processes that hide from the environment scan (issue 11) -------------------------

ESCAPERS = ["env_dropper.py", "proctitle.py", "reforker.py"]
BACKENDS = [pytest.param("", id="default-backend"), pytest.param("psutil", id="psutil-backend")]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The inner session's process backend: the platform's default, or the portable one forced."""
    if request.param:
        monkeypatch.setenv(_processes.BACKEND_VAR, request.param)
    else:
        monkeypatch.delenv(_processes.BACKEND_VAR, raising=False)
    return request.param


@pytest.mark.parametrize("flow", ESCAPERS)
def test_escaping_helpers_die_with_the_test(tagged: Tagged, backend: str, flow: str) -> None:
    """Helpers that drop their environment, retitle themselves or keep re-forking: killed at
    teardown after a successful run (as orphans) and when a run timeout kills the run."""
    tagged.pytester.makepyfile(
        f"""
        import pytest
        from pytest_metaflow import RunTimeoutError

        def test_orphans(runner):
            assert runner("{tagged.flow(flow)}").run(seconds=3).status == "successful"

        @pytest.mark.metaflow(timeout=8)
        def test_run_timeout(runner):
            with pytest.raises(RunTimeoutError):
                runner("{tagged.flow(flow)}").run(seconds=300)
        """
    )
    result = tagged.pytester.runpytest_subprocess()
    result.assert_outcomes(passed=2)  # the leak guard found nothing left either
    assert tagged.leftovers() == []
    assert tagged.stray_files() == []


@pytest.mark.parametrize("flow", ESCAPERS)
def test_escaping_helpers_die_with_a_killed_pytest(tagged: Tagged, backend: str, flow: str) -> None:
    """SIGKILL of pytest while they run: the watchdog finds them by group, descent and token."""
    tagged.pytester.makepyfile(
        f"""
        def test_slow(runner):
            runner("{tagged.flow(flow)}").run(seconds=300)
        """
    )
    proc = tagged.popen("-v")
    try:
        wait_for(tagged.tag, "step start", proc)
        time.sleep(3)  # let the step start its helpers (a re-forking chain, a retitled helper)
        assert tagged.census.count(), "nothing to kill: the scenario did not start"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert tagged.leftovers() == []
    assert tagged.stray_files() == []


def test_setproctitle_hides_the_token(tagged: Tagged) -> None:
    """The scenario is real: the retitled helper's environment no longer shows the token."""
    tagged.pytester.makepyfile(
        f"""
        import time
        from pytest_metaflow import _processes

        def test_hidden(runner):
            async def main():
                running = await runner("{tagged.flow("proctitle.py")}").async_run(seconds=300)
                deadline = time.monotonic() + 120
                while "titled" not in open(running.command_obj.log_files["stdout"]).read():
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
                return running
            import asyncio
            asyncio.run(main())
            titled = [p for p in _processes.other_pids() if b"innocent-helper" in (_processes.read_proc(p, "cmdline") or b"")]
            assert titled
            assert all(b"PYTEST_METAFLOW_TOKEN" not in (_processes.read_proc(p, "environ") or b"") for p in titled)
        """
    )
    tagged.pytester.runpytest_subprocess().assert_outcomes(passed=1)
    assert tagged.leftovers() == []


def test_kill_stops_a_reforking_chain_and_loops_until_nothing_is_left(tmp_path: Path) -> None:
    """kill_processes on its own: a fork-and-exit chain in a registered group, and one in a session of its own.

    The root is a child subreaper that reaps whatever it adopts, as a run's root is
    (the chains' exited members do not pile up as zombies). Each chain is bounded
    (reforker.py's CHAIN: 800 forks, 60 s) and leaves a ``.expired`` file if it ends by
    itself: the kill, not the bound, must end it.
    """
    root_code = (
        "import ctypes, os, subprocess, sys, time\n"
        "ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER\n"
        "chain, cwd = sys.argv[1], sys.argv[2]\n"
        "def start(name, **kw):\n"
        "    subprocess.Popen([sys.executable, '-c', chain, str(time.time() + 60), os.path.join(cwd, name + '.expired'), '800', cwd, name], **kw)\n"
        "start('chain', env={})\n"
        "start('session', start_new_session=True)\n"
        "deadline = time.time() + 60\n"
        "while time.time() < deadline:  # reap everything: this root waits for nothing else\n"
        "    time.sleep(0.05)\n"
        "    try:\n"
        "        while os.waitpid(-1, os.WNOHANG)[0]:\n"
        "            pass\n"
        "    except ChildProcessError:\n"
        "        pass\n"
    )
    code = """
import os, subprocess, sys, time
from pytest_metaflow import _processes
sys.path.insert(0, sys.argv[1])
from reforker import CHAIN
token = _processes.new_token()
root = subprocess.Popen(_processes.in_new_session([sys.executable, "-c", sys.argv[2], CHAIN, os.getcwd()]),
    env=dict(os.environ, PYTEST_METAFLOW_TOKEN=token + "/1"))
_processes.register_run(token, root.pid)
time.sleep(2)
chains = set()
deadline = time.monotonic() + 30
while chains != {"chain", "session"} and time.monotonic() < deadline:  # a scan catches a fast chain now and then
    chains.update({line.split()[-1] for line in _processes.processes_with(os.getcwd())} & {"chain", "session"})
assert chains == {"chain", "session"}, chains
killed = _processes.kill_processes([token])
root.wait()
time.sleep(1)
print("left", _processes.find_processes([token]), "killed", len(killed))
"""
    try:
        # Output to files, not pipes: a chain that survived would hold a pipe open forever.
        with open(tmp_path / "out", "w") as out_file, open(tmp_path / "err", "w") as err_file:
            proc = subprocess.run(
                [sys.executable, "-c", code, str(FLOWS), root_code],
                stdout=out_file,
                stderr=err_file,
                timeout=120,
                cwd=tmp_path,
            )
        out = subprocess.CompletedProcess(
            proc.args, proc.returncode, (tmp_path / "out").read_text(), (tmp_path / "err").read_text()
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("left [] killed"), out.stdout
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # by command line, independent of the kill's own bookkeeping
            assert [p for p in processes_with(str(tmp_path)) if p.split()[-1] in ("chain", "session")] == []
        assert list(tmp_path.glob("*.expired")) == []  # killed, not ended by their own bound
    finally:
        for line in processes_with(str(tmp_path)):
            try:
                os.kill(int(line.split(":")[0]), signal.SIGKILL)
            except OSError:
                pass


def test_backend_switch_and_report_header(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_processes.BACKEND_VAR, "psutil")
    assert _processes.backend() == "psutil"
    assert _processes.limitations() and "subreaper" in _processes.limitations()[0]
    result = pytester.runpytest_subprocess()
    result.stdout.fnmatch_lines(["metaflow: process guard: psutil backend*", "metaflow: WARNING: no child subreaper*"])
    monkeypatch.delenv(_processes.BACKEND_VAR)
    if sys.platform.startswith("linux"):
        assert _processes.backend() == "linux" and _processes.limitations() == []
        result = pytester.runpytest_subprocess()
        result.stdout.fnmatch_lines(
            [
                "metaflow: process guard: linux backend (process groups, descent with each run's root a child subreaper, tokens)*"
            ]
        )
        result.stdout.no_fnmatch_line("*WARNING*")


# -- leak guard --------------------------------------------------------------------


def test_leak_guard_reports_bare_runner_leftovers(tagged: Tagged) -> None:
    tagged.pytester.makepyfile(
        f"""
        import asyncio
        from metaflow import Runner

        def test_bare_runner(runner, tmp_path):
            runner("{tagged.flow("hello.py")}").run()  # fixture runs leave nothing
            async def start():
                # a Runner made without the fixture: nobody stops its run (its datastore in
                # tmp_path, not the cwd: the report to check here is the process's)
                env = {{"METAFLOW_USER": "x", "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(tmp_path)}}
                return await Runner("{tagged.flow("slow.py")}", env=env).async_run(seconds=300)
            asyncio.run(start())

        def test_clean(runner):
            runner("{tagged.flow("hello.py")}").run()
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


WRITER_FLOW = """
import os, uuid
from metaflow import FlowSpec, step

class WriterFlow(FlowSpec):
    @step
    def start(self):
        # what metaflow.S3 does in the cwd when its temp dir is not redirected
        os.makedirs("metaflow.s3." + uuid.uuid4().hex[:8])
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    WriterFlow()
"""


def test_leak_guard_reports_metaflow_files_for_every_fixture(tagged: Tagged) -> None:
    (tagged.pytester.path / tagged.tag / "writer.py").write_text(WRITER_FLOW)
    tagged.flow_files.add("writer.py")
    tagged.pytester.makepyfile(
        f"""
        import pytest

        FLOW = "{tagged.flow("writer.py")}"
        SOURCE = open(FLOW).read().split("if __name__")[0]

        def test_runner(runner):
            runner(FLOW).run()

        def test_nbrunner(nbrunner):
            nbrunner(SOURCE).nbrun()

        @pytest.fixture(scope="session")
        def shared(runner_factory):
            return runner_factory(FLOW).run()

        def test_session(shared):
            assert shared.status == "successful"

        def test_last():
            pass
        """
    )
    result = tagged.pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=4, errors=3)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_runner*",
            "*Metaflow file written outside the store: */metaflow.s3.*",
            "*ERROR at teardown of test_nbrunner*",
            "*Metaflow file written outside the store: */metaflow.s3.*",
            "*ERROR at teardown of test_last*",
            "*Metaflow file written outside the store: */metaflow.s3.*",
        ]
    )
    for leftover in tagged.pytester.path.glob("metaflow.s3.*"):
        leftover.rmdir()
    assert tagged.leftovers() == []


def test_leak_guard_reports_metaflow_files_for_collected_flows(tagged: Tagged) -> None:
    """The fourth entry point (#10 item 4): a collected flow runs from its own directory;
    what it writes there is reported like a fixture run's."""
    (tagged.pytester.path / tagged.tag / "writer.py").write_text(WRITER_FLOW)
    tagged.flow_files.add("writer.py")
    result = tagged.pytester.runpytest_subprocess(f"--metaflow-collect={tagged.tag}/writer.py", tagged.tag)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of WriterFlow*",
            f"*Metaflow file written outside the store: */{tagged.tag}/metaflow.s3.*",
        ]
    )
    for leftover in (tagged.pytester.path / tagged.tag).glob("metaflow.s3.*"):
        leftover.rmdir()
    assert tagged.leftovers() == []


# -- concurrency --------------------------------------------------------------------


def test_concurrent_async_runs_in_one_store(tagged: Tagged) -> None:
    tagged.pytester.makepyfile(
        f"""
        import asyncio
        from metaflow import Flow

        def test_many(runner):
            async def main():
                flow = "{tagged.flow("hello.py")}"
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
            result = runner("{tagged.flow("hello.py")}").run(alpha=alpha)
            assert result.run.data.x == alpha + 1
            assert [r.pathspec for r in Flow("HelloFlow")] == [result.run.pathspec]

        @pytest.mark.metaflow(timeout=2)
        @pytest.mark.parametrize("i", range(2))
        def test_timeout(runner, i):
            runner("{tagged.flow("spawner.py")}").run(seconds=300)
        """
    )
    result = tagged.pytester.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=6, failed=2)
    assert tagged.leftovers() == []
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


def test_run_root_adopts_and_reaps_orphans(runner: object, tmp_path: Path) -> None:
    """The run's root is the child subreaper: a fork chain's members are re-parented to it
    (so they stay its descendants) and reaped by it, so zombies do not pile up; pytest,
    which is no subreaper, gets none of them."""
    if _processes.backend() != "linux":
        pytest.skip("the child subreaper is Linux-only (the psutil backend is forced)")
    import asyncio

    shutil.copy(FLOWS / "reforker.py", tmp_path / "reforker.py")

    async def watch() -> tuple[int, int, int, int]:
        r = runner(str(tmp_path / "reforker.py"))  # type: ignore[operator]
        running = await r.async_run(seconds=300)
        root = running.command_obj.process.pid
        # With the runtime server the Runner's process is a shim and the runtime (the run's
        # root, the subreaper) a forked child of the server, registered as a group of its own.
        deadline = time.monotonic() + 30
        while _launcher.server_enabled() and time.monotonic() < deadline:
            forked = [g.leader for g in _processes._REGISTRY.groups_of([r.token]) if g.leader != root]
            if forked or b"pytest_metaflow_shim" not in (_processes.read_proc(root, "cmdline") or b""):
                root = forked[0] if forked else root
                break
            await asyncio.sleep(0.1)
        adopted, zombies, most = set(), 0, 0
        deadline = time.monotonic() + 120
        while len(adopted) < 40 and time.monotonic() < deadline:
            table = proc_table()
            children = [p for p in table.values() if p.ppid == root]
            adopted |= {p.pid for p in children if b"chain" in (_processes.read_proc(p.pid, "cmdline") or b"")}
            most = max(most, sum(p.zombie for p in children))
            zombies = sum(p.zombie and p.ppid == os.getpid() for p in table.values())
            await asyncio.sleep(0.1)
        return root, len(adopted), most, zombies

    root, adopted, most, zombies_under_pytest = asyncio.run(watch())
    # 40 chain members re-parented to the root one after the other, each exiting after
    # its fork: unreaped, they would all be zombies of the root by now.
    assert adopted >= 40
    assert most < adopted // 2
    assert zombies_under_pytest == 0
    assert list(tmp_path.glob("*.expired")) == []
