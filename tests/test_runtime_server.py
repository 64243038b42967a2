"""The runtime server (stage 2 of the task launcher): a run's runtime forked from a warm interpreter.

Every run here is real. The flows record, from their runtime process (module-level code
runs there before the CLI), what a fresh ``python flow.py run`` would see; a served run
and an ``exec`` run of the same flow must record the same. Process tests kill what they
start and check that nothing of a run outlives it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from pytest_metaflow import _launcher, _processes, _runtime_server

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the runtime server is Linux-only"),
    pytest.mark.skipif(not _launcher.server_enabled(), reason="PYTEST_METAFLOW_RUNTIME_SERVER=0"),
    pytest.mark.skipif(
        "COVERAGE_PROCESS_CONFIG" in os.environ, reason="runs measured by coverage start fresh runtimes"
    ),
]

RUNTIME_PROBE = """
import json, os, signal, sys, tempfile, time
from metaflow import FlowSpec, step

HERE = os.path.dirname(os.path.abspath(__file__))

if "run" in sys.argv and "step" not in sys.argv:  # the runtime process
    from metaflow import metaflow_config
    from metaflow.metaflow_current import current
    from metaflow.plugins.datastores.local_storage import LocalStorage

    def ancestry():
        out, pid = [], os.getpid()
        for _ in range(4):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    out.append(f.read())
                with open(f"/proc/{pid}/stat") as f:
                    pid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                break
        return out

    with open("/proc/self/environ", "rb") as f:
        proc_env = sorted(e.decode() for e in f.read().split(b"\\0") if e)
    with open("/proc/self/cmdline", "rb") as f:
        proc_cmd = [a.decode() for a in f.read().split(b"\\0") if a]
    env = sorted(f"{k}={v}" for k, v in os.environ.items())
    facts = {
        "served": any(b"pytest_metaflow_server" in c for c in ancestry()[1:]),
        "pid": os.getpid(),
        "sys_path0": sys.path[0],
        "sys_path": sys.path,
        "modules_from_flow_dir": sorted(n for n, m in sys.modules.items() if (getattr(m, "__file__", None) or "").startswith(HERE + os.sep)),
        "tempdir": tempfile.gettempdir(),
        "sysroot": metaflow_config.DATASTORE_SYSROOT_LOCAL,
        "local_storage_sysroot": LocalStorage.SYSROOT_VAR,
        "current_tempdir": current._tempdir,
        "tempdir_config": metaflow_config.TEMPDIR,
        "client_cache": metaflow_config.CLIENT_CACHE_PATH,
        "home_config": metaflow_config.from_conf("DEFAULT_DATASTORE"),
        "proc_environ_extra": sorted(set(proc_env) - set(env)),
        "proc_environ_missing": sorted(set(env) - set(proc_env)),
        "proc_cmdline_is_argv": proc_cmd == [sys.executable, *sys.argv],
        "server_keys": sorted(k for k in os.environ if k in ("PYTEST_METAFLOW_SERVER", "PYTEST_METAFLOW_SERVER_PAD")),
        "main_file": sys.modules["__main__"].__file__,
        "main_spec": repr(sys.modules["__main__"].__spec__),
        "foreach_frame": hasattr(sys.modules["__main__"], "ForeachFrame"),
        "own_group": os.getpgid(0) == os.getpid(),
        "sigint": repr(signal.getsignal(signal.SIGINT)),
        "sigterm": repr(signal.getsignal(signal.SIGTERM)),
        "cli_loaded_before_flow": "metaflow.cli" in sys.modules,
    }
    with open(os.path.join(HERE, os.environ.get("FACTS", "runtime") + ".json"), "w") as f:
        json.dump(facts, f)


class RuntimeProbeFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        if os.path.exists(os.path.join(HERE, "hold")):
            with open(os.path.join(HERE, f"task-{self.input}"), "w") as f:
                f.write(str(os.getpid()))
            time.sleep(60)  # bounded: the test kills the run long before
        self.value = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.values = sorted(i.value for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    RuntimeProbeFlow()
"""


@pytest.fixture(autouse=True)
def _not_under_coverage(request: pytest.FixtureRequest) -> None:
    """Runs measured by coverage (pytest-cov measuring this session) start fresh runtimes."""
    from pytest_metaflow import _coverage

    if _coverage.child_env():
        pytest.skip("coverage measures the runs: they start fresh runtimes")


@pytest.fixture(autouse=True)
def _own_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server for this test's environment, whatever environment started the session's."""
    monkeypatch.setattr(_runtime_server, "_MAX_SERVERS", len(_runtime_server._servers) + 2)


@pytest.fixture
def probe(tmp_path: Path) -> Path:
    flow = tmp_path / "runtime_probe.py"
    flow.write_text(RUNTIME_PROBE)
    return flow


def _facts(probe: Path) -> dict[str, Any]:
    facts: dict[str, Any] = json.loads((probe.parent / "runtime.json").read_text())
    (probe.parent / "runtime.json").unlink()
    return facts


def test_a_served_runtime_sees_what_a_fresh_one_sees(runner: Any, probe: Path) -> None:
    served = runner(str(probe), launcher="fork").run()
    served_facts = _facts(probe)
    fresh = runner(str(probe), launcher="exec").run()
    fresh_facts = _facts(probe)
    assert served.status == fresh.status == "successful"
    assert served_facts.pop("served") is True, _runtime_server.server_problem()
    assert fresh_facts.pop("served") is False
    assert served_facts.pop("pid") != fresh_facts.pop("pid")
    assert served_facts == fresh_facts
    # What the comparison rests on: the store's values, not the server's placeholders.
    assert served_facts["sysroot"] == served_facts["local_storage_sysroot"] == str(runner.store.path)
    assert served_facts["tempdir"] == str(runner.store.tmp)
    assert served_facts["current_tempdir"] == served_facts["tempdir_config"] == str(runner.store.tmp)
    assert served_facts["sys_path0"] == str(probe.parent)
    assert served_facts["proc_cmdline_is_argv"] and served_facts["own_group"] and served_facts["foreach_frame"]
    # /proc/PID/environ is the run's (token included): what a fresh runtime shows.
    assert (
        served_facts["proc_environ_extra"] == ["PYTEST_METAFLOW_SUBREAPER=1"] or not served_facts["proc_environ_extra"]
    )
    assert not served_facts["proc_environ_missing"] and not served_facts["server_keys"]
    assert not served_facts["cli_loaded_before_flow"]
    assert served.run["join"].task["values"].data == fresh.run["join"].task["values"].data == [2, 4]


def test_runs_the_server_cannot_vouch_for_start_fresh_runtimes(
    runner: Any, probe: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = runner(str(probe), launcher="fork").run()
    assert result.status == "successful" and _facts(probe)["served"] is True
    # Another environment: a server of its own (imports are made under the run's environment) ...
    result = runner(str(probe), launcher="fork", env={"SOME_SETTING": "1"}).run()
    assert result.status == "successful" and _facts(probe)["served"] is True
    # ... up to a bound; then a fresh runtime.
    monkeypatch.setattr(_runtime_server, "_MAX_SERVERS", len(_runtime_server._servers))
    result = runner(str(probe), launcher="fork", env={"OTHER_SETTING": "1"}).run()
    assert result.status == "successful" and _facts(probe)["served"] is False
    # A Metaflow configuration file in METAFLOW_HOME (read at import).
    config = runner.store.home / "config.json"
    config.write_text(json.dumps({"METAFLOW_DEFAULT_DATASTORE": "local"}))
    try:
        result = runner(str(probe), launcher="fork").run()
        facts = _facts(probe)
        assert result.status == "successful" and facts["served"] is False and facts["home_config"] == "local"
    finally:
        config.unlink()
    # The knob for the server alone.
    monkeypatch.setenv(_launcher.SERVER_KNOB, "0")
    result = runner(str(probe), launcher="fork").run()
    assert result.status == "successful" and _facts(probe)["served"] is False


def test_async_runs_are_served(runner: Any, probe: Path) -> None:
    r = runner(str(probe), launcher="fork")

    async def scenario() -> Any:
        executing = await r.async_run()
        await executing.wait(timeout=300)
        return executing

    result = asyncio.run(scenario())
    assert result.status == "successful"
    facts = _facts(probe)
    assert facts["served"] is True and facts["proc_cmdline_is_argv"]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(pids: list[int], timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def _held_run(r: Any, probe: Path, action: Any) -> tuple[dict[str, Any], list[int]]:
    """Start ``r`` asynchronously with every ``each`` task held; ``action(executing, facts, tasks)``."""
    (probe.parent / "hold").write_text("")

    async def scenario() -> tuple[dict[str, Any], list[int]]:
        executing = await r.async_run()
        deadline = time.monotonic() + 120
        files = [probe.parent / "task-1", probe.parent / "task-2"]
        while not all(f.exists() and f.read_text() for f in files) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        facts = json.loads((probe.parent / "runtime.json").read_text())
        tasks = [int(f.read_text()) for f in files]
        await action(executing, facts, tasks)
        return facts, tasks

    return asyncio.run(scenario())


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def test_sigkill_of_the_shim_ends_the_served_runtime_and_its_tasks(runner: Any, probe: Path) -> None:
    r = runner(str(probe), launcher="fork")

    async def kill_shim(executing: Any, facts: dict[str, Any], tasks: list[int]) -> None:
        assert facts["served"] is True
        assert {facts["pid"], *tasks} <= set(_processes.find_processes([r.token]))
        os.kill(executing.command_obj.process.pid, signal.SIGKILL)
        await executing.wait(timeout=60)

    facts, tasks = _held_run(r, probe, kill_shim)
    try:
        assert _wait_gone([facts["pid"], *tasks]) == [], "the runtime or a task outlived its killed shim"
    finally:
        _kill([facts["pid"], *tasks])


def test_kill_and_leak_guard_find_a_served_runtime_by_its_token(runner: Any, probe: Path) -> None:
    """The runner's kill (timeouts, teardown) reaches the forked runtime and its tasks."""
    r = runner(str(probe), launcher="fork")

    async def kill_run(executing: Any, facts: dict[str, Any], tasks: list[int]) -> None:
        assert facts["served"] is True
        found = _processes.find_processes([r.token])
        assert facts["pid"] in found and set(tasks) <= set(found), (facts["pid"], tasks, found)
        killed = r.kill()
        assert facts["pid"] in killed or not _alive(facts["pid"])
        await executing.wait(timeout=60)

    facts, tasks = _held_run(r, probe, kill_run)
    try:
        assert _wait_gone([facts["pid"], *tasks]) == []
        assert _processes.find_processes([r.token]) == []
    finally:
        _kill([facts["pid"], *tasks])


@pytest.mark.metaflow(timeout=20)
def test_run_timeout_kills_a_served_runtime(runner: Any, probe: Path) -> None:
    from pytest_metaflow.errors import RunTimeoutError

    (probe.parent / "hold").write_text("")
    r = runner(str(probe), launcher="fork")
    with pytest.raises(RunTimeoutError):
        r.run()
    facts = _facts(probe)
    tasks = [int(p.read_text()) for p in probe.parent.glob("task-*") if p.read_text()]
    try:
        assert facts["served"] is True
        assert _wait_gone([facts["pid"], *tasks]) == []
    finally:
        _kill([facts["pid"], *tasks])


def test_pytest_killed_leaves_no_server_and_no_run(flow_pytester: pytest.Pytester, tmp_path: Path) -> None:
    """SIGKILL of pytest while a served run holds: server, runtime and tasks all end."""

    flow = tmp_path / "runtime_probe.py"
    flow.write_text(RUNTIME_PROBE)
    (tmp_path / "hold").write_text("")
    flow_pytester.makepyfile(
        f"""
        def test_held(runner):
            runner({str(flow)!r}, launcher="fork").run()
        """
    )
    proc = _inner_pytest(flow_pytester.path)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 180
        files = [tmp_path / "task-1", tmp_path / "task-2"]
        while not all(f.exists() and f.read_text() for f in files) and time.monotonic() < deadline:
            assert proc.poll() is None, "the inner pytest ended early"
            time.sleep(0.2)
        facts = json.loads((tmp_path / "runtime.json").read_text())
        pids = [facts["pid"], *(int(f.read_text()) for f in files)]
        server = psutil.Process(facts["pid"]).ppid()
        assert facts["served"] is True
        pids.append(server)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert _wait_gone(pids, timeout=60) == [], "something of the run outlived a SIGKILLed pytest"
    finally:
        _kill(pids)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _inner_pytest(path: Path) -> Any:
    """A pytest session in ``path`` (default launcher), in a session of its own, to be SIGKILLed."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != _launcher.LAUNCHER_VAR}
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


HANGS_AT_IMPORT = """
import os, sys, time
from metaflow import FlowSpec, step

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "importing"), "w") as f:
    f.write(str(os.getpid()))
time.sleep(120)  # bounded: gone after two minutes whatever happens


class HangsFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    HangsFlow()
"""


def test_pytest_killed_during_a_served_import_leaves_nothing(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """SIGKILL of pytest while the flow file's import check (forked from the server) hangs: all end."""

    flow = tmp_path / "hangs_flow.py"
    flow.write_text(HANGS_AT_IMPORT)
    pytester.makepyfile(
        f"""
        def test_hangs(runner):
            runner({str(flow)!r}, launcher="fork")
        """
    )
    proc = _inner_pytest(pytester.path)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 120
        marker = tmp_path / "importing"
        while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
            assert proc.poll() is None, "the inner pytest ended early"
            time.sleep(0.2)
        child = int(marker.read_text())
        server = psutil.Process(child).ppid()
        pids = [child, server]
        # Served: the import's child is the runtime server's, in a session of its own.
        assert "pytest_metaflow_server" in " ".join(psutil.Process(server).cmdline())
        assert os.getsid(child) == child
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert _wait_gone(pids, timeout=60) == [], "the import check or the server outlived a SIGKILLed pytest"
    finally:
        _kill(pids)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_a_server_started_early_and_never_used_gives_its_place_up(
    metaflow_store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """prestart() starts a server without waiting; one nothing used is stopped for the next environment."""
    monkeypatch.setattr(_runtime_server, "_servers", {})
    monkeypatch.setattr(_runtime_server, "_MAX_SERVERS", 1)
    flow = str(tmp_path / "any_flow.py")
    base = {**os.environ, **metaflow_store.env(), _launcher.LAUNCHER_VAR: "fork"}
    started: list[Any] = []
    try:
        _runtime_server.prestart(base, flow)
        (first,) = _runtime_server._servers.values()
        started.append(first)
        assert first.proc.poll() is None and not first.used
        other = _runtime_server._server_for([sys.executable, flow], {**base, "SOME_TEST_KEY": "1"})
        assert other is not None and other is not first
        started.append(other)
        assert first.proc is None  # stopped (its process waited for)
        assert list(_runtime_server._servers.values()) == [other]
        other.used = True
        assert other.usable()
        # The one place is taken by a used server: a third environment starts nothing.
        assert _runtime_server._server_for([sys.executable, flow], {**base, "SOME_TEST_KEY": "2"}) is None
        # exec mode and the knob start nothing at all.
        assert _runtime_server._server_for([sys.executable, flow], {**base, _launcher.LAUNCHER_VAR: "exec"}) is None
    finally:
        for server in started:
            server.stop()
