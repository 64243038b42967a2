"""The task launcher (``--metaflow-launcher``): forked tasks write what fresh ones write.

Runs are real: the same flow is run with ``launcher="fork"`` and ``launcher="exec"`` and
the datastores are compared; process tests kill what they start and check that no
process of a run outlives it.
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork launcher is Linux-only")

PROBE = str(Path(__file__).parent / "flows" / "launcher_probe.py")
# Metadata whose value names the run or the moment, not what the task did.
_VARYING_METADATA = {"origin-run-id"}


def _tasks(run: Any) -> dict[tuple[str, str], Any]:
    """Tasks keyed by step and foreach position (task ids depend on launch order)."""
    out = {}
    for step in run:
        for task in step:
            out[(step.id, str(task.metadata_dict.get("foreach-execution-path", "")))] = task
    return out


def _metadata(task: Any) -> list[tuple[str, str, str]]:
    return sorted(
        (m.name, m.type, str(m.value))
        for m in task.metadata
        if m.name not in _VARYING_METADATA and not m.name.startswith("pytest")
    )


def _log(text: str) -> str:
    # Log lines keep no timestamps in the client's view; pids and run ids may appear in messages.
    return re.sub(r"\b\d{6,}\b", "N", text)


def _comparable(value: Any) -> Any:
    # Objects without their own equality (@catch's exception wrapper) compare by their text.
    return (type(value).__name__, str(value)) if type(value).__eq__ is object.__eq__ else value


def _artifacts(task: Any) -> dict[str, Any]:
    return {
        a.id: _comparable(a.data) for a in task if a.id not in ("how", "hows", "served") and not a.id.startswith("_")
    }


def metaflow_env(runner: Any) -> dict[str, str]:
    """The environment the runner fixture's runs get (the store's, on top of this process's)."""
    return {**os.environ, **runner.store.env()} if hasattr(runner, "store") else dict(os.environ)


def test_datastore_with_fork_is_the_datastore_with_exec(runner: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_metaflow import _runtime_server

    # A runtime server for this test's environment (the session's first run may have had another).
    monkeypatch.setattr(_runtime_server, "_MAX_SERVERS", len(_runtime_server._servers) + 1)
    forked = runner(PROBE, launcher="fork").run()
    fresh = runner(PROBE, launcher="exec").run()
    assert forked.status == fresh.status == "successful"
    a, b = _tasks(forked.run), _tasks(fresh.run)
    assert sorted(a) == sorted(b)
    for key in sorted(a):
        ta, tb = a[key], b[key]
        assert _artifacts(ta) == _artifacts(tb), key
        assert _metadata(ta) == _metadata(tb), key
        assert _log(ta.stdout) == _log(tb.stdout), key
        assert _log(ta.stderr) == _log(tb.stderr), key
        # The runtime's view of each attempt: same return codes, same retries.
        assert ta.metadata_dict.get("attempt") == tb.metadata_dict.get("attempt"), key
    # Each run really went the way it was asked to (the check above would pass if both exec'd).
    hows = {key: task["how"].data for key, task in a.items()}
    assert hows.pop(("environ", "")) == "exec", "@environment changes the environment: exec fallback"
    assert set(hows.values()) == {"fork"}, hows
    assert {task["how"].data for task in b.values()} == {"exec"}
    seen = forked.run["end"].task["seen"].data
    assert seen == fresh.run["end"].task["seen"].data
    assert seen["foreach_frame_in_main"] and not seen["zygote_address_visible"] and seen["stdin_is_devnull"]
    assert seen["executable"] == sys.executable or os.path.exists(seen["executable"])
    assert forked.run["each"].task.data is not None
    # With the runtime server (the default on Linux), the forked run's runtime was forked too.
    from pytest_metaflow import _launcher, _runtime_server

    served = forked.run["end"].task["served"].data
    assert served == (_launcher.server_enabled() and "COVERAGE_PROCESS_CONFIG" not in metaflow_env(runner)), (
        _runtime_server.server_problem()
    )
    assert fresh.run["end"].task["served"].data is False


@pytest.mark.metaflow(launcher="exec")
def test_marker_asks_for_fresh_interpreters(runner: Any) -> None:
    result = runner(PROBE).run()
    assert {t["how"].data for s in result.run for t in s} == {"exec"}


def test_bad_launcher_value_is_a_clear_error(runner: Any) -> None:
    with pytest.raises(ValueError, match=r"runner\(launcher=\.\.\.\): expected one of fork, exec, got 'spawn'"):
        runner(PROBE, launcher="spawn")


def test_option_and_header(flow_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_METAFLOW_LAUNCHER", raising=False)  # CI's launcher-off pass sets it
    monkeypatch.delenv("PYTEST_METAFLOW_RUNTIME_SERVER", raising=False)
    flow_pytester.makepyfile(
        """
        def test_probe(runner):
            run = runner("launcher_probe.py").run().run
            print("HOWS", sorted({t["how"].data for s in run for t in s}))
        """
    )
    result = flow_pytester.runpytest_subprocess("-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["metaflow: task launcher fork, runtime server on"])
    assert "HOWS ['exec', 'fork']" in result.stdout.str()
    monkeypatch.setenv("PYTEST_METAFLOW_RUNTIME_SERVER", "0")
    result = flow_pytester.runpytest_subprocess("--collect-only")
    result.stdout.fnmatch_lines(["metaflow: task launcher fork, runtime server off ($PYTEST_METAFLOW_RUNTIME_SERVER)"])
    monkeypatch.delenv("PYTEST_METAFLOW_RUNTIME_SERVER")
    result = flow_pytester.runpytest_subprocess("-s", "--metaflow-launcher=exec")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["metaflow: task launcher exec"])
    assert "HOWS ['exec']" in result.stdout.str()
    result = flow_pytester.runpytest_subprocess("--metaflow-launcher=spawn")
    result.stderr.fnmatch_lines(["*--metaflow-launcher: expected one of fork, exec, got 'spawn'*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    # The environment variable sets the default (sessions PYTEST_ADDOPTS does not reach).
    monkeypatch.setenv("PYTEST_METAFLOW_LAUNCHER", "exec")
    result = flow_pytester.runpytest_subprocess("-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["metaflow: task launcher exec"])
    assert "HOWS ['exec']" in result.stdout.str()


KILLER = """
import os, signal, sys, time
from metaflow import FlowSpec, step


class FanOutFlow(FlowSpec):
    @step
    def start(self):
        self.items = ["fail", "sleep"]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        if self.input == "fail":
            import resource
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            time.sleep(1)
            os.kill(os.getpid(), signal.SIGSEGV)
        with open(os.path.join(os.environ["PIDS"], "sleeper"), "w") as f:
            f.write(str(os.getpid()))
        time.sleep(60)  # bounded: killed by the runtime long before
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    FanOutFlow()
"""


def _gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def test_signal_death_and_killed_siblings(runner: Any, tmp_path: Path) -> None:
    """A task dying of SIGSEGV is reported as such; the sibling the runtime kills dies with its shim."""
    flow = tmp_path / "fanout.py"
    flow.write_text(KILLER)
    pids = tmp_path / "pids"
    pids.mkdir()
    result = runner(str(flow), launcher="fork", env={"PIDS": str(pids)}).run()
    try:
        assert result.status == "failed"
        # Metaflow words it so only for return code -11: the shim died of the task's signal.
        logs = [t.stderr for t in result.run["each"]]
        assert any("Task failed with a segmentation fault." in log for log in logs), logs
        assert any("[KILLED BY ORCHESTRATOR]" in log for log in logs), logs
        sleeper = int((pids / "sleeper").read_text())
        assert _gone(sleeper), "the sibling killed by the runtime outlived its shim"
    finally:
        if (pids / "sleeper").exists():
            try:
                os.kill(int((pids / "sleeper").read_text()), signal.SIGKILL)
            except OSError:
                pass


BLOCKED = """
import os, time
from metaflow import FlowSpec, step


class HeldFlow(FlowSpec):
    @step
    def start(self):
        with open(os.path.join(os.environ["PIDS"], "task"), "w") as f:
            f.write(str(os.getpid()))
        time.sleep(60)  # bounded: the test kills the runtime long before
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    HeldFlow()
"""


def test_zygote_and_tasks_die_with_the_runtime(runner: Any, tmp_path: Path) -> None:
    """SIGKILL of the runtime: its zygote and the zygote's tasks end too (PR_SET_PDEATHSIG)."""
    import asyncio

    flow = tmp_path / "held.py"
    flow.write_text(BLOCKED)
    pids = tmp_path / "pids"
    pids.mkdir()
    r = runner(str(flow), launcher="fork", env={"PIDS": str(pids)})

    async def scenario() -> tuple[int, list[int], int]:
        executing = await r.async_run()
        runtime = executing.command_obj.process.pid
        deadline = time.monotonic() + 120
        while not (pids / "task").exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        task = int((pids / "task").read_text())
        # The runtime: the Runner's process, or (runtime server) the forked runtime its shim stands for.
        zygote = psutil.Process(task).ppid()
        if zygote != runtime and psutil.Process(zygote).ppid() != runtime:
            runtime = psutil.Process(zygote).ppid()
        rt = psutil.Process(runtime)
        zygotes = [c.pid for c in rt.children() if c.pid == zygote and c.cmdline() == rt.cmdline()]
        os.kill(runtime, signal.SIGKILL)
        await executing.wait(timeout=60)
        return runtime, zygotes, task

    runtime, zygotes, task = asyncio.run(scenario())
    try:
        assert zygotes, "the task's parent is not a child of the runtime: it was not forked by a zygote"
        assert _gone(task), "a forked task outlived its runtime"
        assert all(_gone(z) for z in zygotes), "the zygote outlived its runtime"
    finally:
        for pid in [task, *zygotes]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


# --- stage 3: the code package and git provenance ------------------------------------------

PACKAGE_PROBE = """
import atexit, json, os, sys
from metaflow import FlowSpec, step


def _report():
    # Runs in the runtime process only (the run command), after the flow ended.
    from metaflow.system_context import system_context

    package = system_context.package
    package._create_thread.join(60)
    before = type(package._blob).__name__
    blob = package.blob
    with open(os.environ["PACKAGE_REPORT"], "w") as f:
        json.dump({"before": before, "after": type(blob).__name__, "magic": bytes(blob[:2]).hex(), "size": len(blob)}, f)


if "run" in sys.argv and "step" not in sys.argv:
    atexit.register(_report)


class PackageProbeFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    PackageProbeFlow()
"""


@pytest.mark.parametrize(
    ("launcher", "env", "deferred"),
    [
        ("fork", {}, True),
        ("fork", {"PYTEST_METAFLOW_CODE_PACKAGE": "1"}, False),
        # Uploaded to the datastore (and registered in every task's metadata): never deferred.
        ("fork", {"METAFLOW_FEAT_ALWAYS_UPLOAD_CODE_PACKAGE": "1"}, False),
        ("exec", {}, False),
    ],
    ids=["fork", "fork-build", "fork-upload", "exec"],
)
def test_code_package_is_built_when_read(
    runner: Any, tmp_path: Path, launcher: str, env: dict[str, str], deferred: bool
) -> None:
    """With the launcher, a local run's code package is made on its first read, not at start."""
    # The probe finds the run's package through metaflow.system_context (newer than 2.19.0; the
    # oldest supported, 2.19.0, has none and gives no other handle on it from a flow file).
    pytest.importorskip("metaflow.system_context", reason="this Metaflow has no system_context to probe")
    flow = tmp_path / "package_probe.py"
    flow.write_text(PACKAGE_PROBE)
    report = tmp_path / "report.json"
    result = runner(str(flow), launcher=launcher, env={"PACKAGE_REPORT": str(report), **env}).run()
    assert result.status == "successful"
    seen = json.loads(report.read_text())
    # Before the read: a placeholder with the launcher, Metaflow's archive otherwise.
    assert (seen["before"] == "_Deferred") is deferred, seen
    # The read gets the real archive either way (a gzip'd tar of the flow's code and metaflow).
    assert seen["after"] in ("bytes", "bytearray") and seen["magic"] == "1f8b" and seen["size"] > 100_000, seen


FAKE_GIT = """#!/bin/sh
echo "$PPID $*" >> "$GIT_CALLS"
exec {git} "$@"
"""


def _git_repo(path: Path) -> None:
    import subprocess

    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=path,
            check=True,
            capture_output=True,
            timeout=60,
        )

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "flow")


def test_git_provenance_is_computed_once_per_run(runner: Any, tmp_path: Path) -> None:
    """Forked tasks inherit the runtime's git provenance: one process runs git, the metadata is the same."""
    import shutil

    real_git = shutil.which("git")
    if real_git is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    flow = repo / "three.py"
    flow.write_text(Path(__file__).parent.joinpath("flows", "launcher_probe.py").read_text())
    _git_repo(repo)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").write_text(FAKE_GIT.format(git=real_git))
    (bin_dir / "git").chmod(0o755)
    path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    callers = {}
    runs = {}
    for launcher in ("fork", "exec"):
        calls = tmp_path / f"git-{launcher}.txt"
        runs[launcher] = runner(str(flow), launcher=launcher, env={"PATH": path, "GIT_CALLS": str(calls)}).run()
        assert runs[launcher].status == "successful"
        callers[launcher] = {line.split()[0] for line in calls.read_text().splitlines()}
    # exec: the runtime and every task ask git; fork: the runtime only, before the zygote forks
    # (the @environment step of the probe is exec'd: it asks git too).
    tasks = sum(1 for s in runs["exec"].run for _ in s)
    assert len(callers["exec"]) >= tasks + 1, callers  # retried tasks ask again
    assert len(callers["fork"]) == 2, callers
    # What git told them is recorded the same: the git-info and metaflow_version metadata.
    keys = ("git-info", "metaflow_version")
    a, b = _tasks(runs["fork"].run), _tasks(runs["exec"].run)
    for key in sorted(a):
        git_a = sorted((m.name, str(m.value)) for m in a[key].metadata if m.name in keys)
        git_b = sorted((m.name, str(m.value)) for m in b[key].metadata if m.name in keys)
        assert git_a == git_b, key
        assert any(name == "git-info" and "commit_sha" in value for name, value in git_a), git_a


# --- failing fan-outs -------------------------------------------------------------------------

FANOUT_FAIL = """
import os, time
from metaflow import FlowSpec, step


class FailFastFlow(FlowSpec):
    @step
    def start(self):
        self.items = ["fail", "a", "b"]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        pids = os.environ["PIDS"]
        if self.input == "fail":
            deadline = time.time() + 60
            while len(os.listdir(pids)) < 2 and time.time() < deadline:
                time.sleep(0.05)
            raise ValueError("boom in the failing branch")
        with open(os.path.join(pids, self.input), "w") as f:
            f.write(str(os.getpid()))
        time.sleep(60)  # bounded: killed by the runtime long before
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    FailFastFlow()
"""


def test_failing_fan_out_ends_its_siblings_at_once(runner: Any, metaflow_store: Any, tmp_path: Path) -> None:
    """A failed foreach branch ends the run without the runtime's 5 s wait; the datastore is as without."""
    flow = tmp_path / "failfast.py"
    flow.write_text(FANOUT_FAIL)
    results = {}
    sleepers: list[int] = []
    try:
        for launcher in ("fork", "exec"):
            pids = tmp_path / f"pids-{launcher}"
            pids.mkdir()
            results[launcher] = runner(str(flow), launcher=launcher, env={"PIDS": str(pids)}).run()
            found = [int(p.read_text()) for p in pids.iterdir()]
            sleepers += found
            assert len(found) == 2
            assert all(_gone(pid) for pid in found), "a sibling outlived the failed run"
        fork, fresh = results["fork"], results["exec"]
        assert fork.status == fresh.status == "failed"
        # The runtime started its wait in both runs; only without the launcher did it last.
        assert "Terminating 2 active tasks" in fork.stdout and "Terminating 2 active tasks" in fresh.stdout
        assert "after having waited" in fresh.stdout, fresh.stdout
        assert "after having waited" not in fork.stdout, fork.stdout
        # What the datastore records: the failing task's exception, the siblings killed.
        for result in (fork, fresh):
            tasks = list(result.run["each"])
            failing = [t for t in tasks if "ValueError: boom in the failing branch" in t.stderr]
            killed = [t for t in tasks if "[KILLED BY ORCHESTRATOR]" in t.stderr]
            assert len(failing) == 1 and len(killed) == 2, [t.stderr for t in tasks]
            assert not any(t.successful for t in tasks)
            assert not result.run.successful and not result.run.finished
        # The runtime's record of each branch (return code, killed, success) is the same.
        records = {}
        for name, result in (("fork", fork), ("exec", fresh)):
            pattern = os.path.join(
                glob.escape(metaflow_store.datastore_dir), "FailFastFlow", result.run.id, "each", "*"
            )
            records[name] = sorted(Path(p).read_text() for p in glob.glob(os.path.join(pattern, "*.runtime")))
        assert records["fork"] == records["exec"] and len(records["fork"]) == 3, records
        assert sum('"killed": true' in r for r in records["fork"]) == 2, records
    finally:
        for pid in sleepers:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _launcher_module() -> Any:
    from pytest_metaflow import _runtime_server

    return _runtime_server._mfext_module("pytest_metaflow_launcher")


def test_the_shim_imports_no_python_module() -> None:
    # It starts once per task: socket/signal/threading/json would double its start-up.
    launcher = _launcher_module()
    shim = launcher.SHIM_SOURCE  # also the runtime server's shim
    # No address: the shim execs the real interpreter with the same argv.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_METAFLOW_ZYGOTE", "PYTEST_METAFLOW_SERVER")}
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-IS", shim, "-c", "print('real')"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout == "real\n", proc.stderr
    lines = proc.stderr.split("\n")
    # -X importtime is not passed on by the exec: every line is the shim's own imports.
    imported = {line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:") and "|" in line}
    imported.discard("imported package")  # the header line
    assert imported & {"socket", "signal", "threading", "json", "array", "selectors"} == set()
    assert {"_socket", "_signal"} <= imported | set(sys.builtin_module_names)


def test_a_malformed_shim_request_is_refused() -> None:
    import marshal

    launcher = _launcher_module()
    good = {"argv": ["flow.py", "step", "start"], "env": {"A": "b\udcff"}, "cwd": "/"}
    assert launcher.decode_request(marshal.dumps(good)) == good
    for bad in (b"", b"\x00garbage", marshal.dumps([1]), marshal.dumps({**good, "argv": "flow.py"})):
        with pytest.raises(ValueError):
            launcher.decode_request(bad)
    with pytest.raises(ValueError):
        launcher.decode_request(marshal.dumps({**good, "env": {"A": 1}}))
