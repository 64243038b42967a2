"""One teardown contract (pytest_metaflow._teardown.RunRegistry): every fixture and collected flow
tears down kill -> cleanup -> leak guard -> watchdog release; nbrunner and run_notebook included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_metaflow._teardown import RunRegistry


class _Entry:
    def __init__(self, name: str, calls: list[str], *, fail_kill: bool = False) -> None:
        self.name, self.calls, self.fail_kill = name, calls, fail_kill
        self.token = f"token-{name}"
        self.paths = [f"/nonexistent/{name}"]

    def kill(self) -> list[int]:
        self.calls.append(f"kill {self.name}")
        if self.fail_kill:
            raise RuntimeError("kill failed")
        return []

    def cleanup(self) -> None:
        self.calls.append(f"cleanup {self.name}")


class _Guard:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def check(self, entries: list[Any]) -> None:
        self.calls.append("guard " + " ".join(e.name for e in entries))


class _Watchdog:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def discard_token(self, token: str) -> None:
        self.calls.append(f"release {token}")

    def discard_path(self, path: str) -> None:
        self.calls.append(f"release {path}")


def test_the_registry_kills_everything_then_cleans_then_guards_then_releases() -> None:
    calls: list[str] = []
    registry = RunRegistry(_Guard(calls), _Watchdog(calls))  # type: ignore[arg-type]
    registry.add(_Entry("a", calls))
    registry.add(_Entry("b", calls, fail_kill=True))
    with pytest.raises(RuntimeError, match="kill failed"):
        registry.close()
    # Every step ran although a kill failed; the watchdog keeps its tokens until the guard has looked.
    assert calls == [
        "kill b",
        "kill a",
        "cleanup b",
        "cleanup a",
        "guard a b",
        "release token-a",
        "release /nonexistent/a",
        "release token-b",
        "release /nonexistent/b",
    ]
    assert registry.entries == []


NBRUNNER_LEAK = """
from pathlib import Path

from metaflow import FlowSpec, step


class TinyFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


def test_leaky(nbrunner):
    assert nbrunner(TinyFlow).nbrun().successful
    Path(".metaflow").mkdir()  # as a stray Metaflow run with the default datastore would
"""


def test_nbrunner_has_the_leak_guard(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_leaky=NBRUNNER_LEAK)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*pytest-metaflow leak guard: the test's runs left behind",
            f"*Metaflow file written outside the store: {pytester.path}/.metaflow",
        ]
    )
    # --metaflow-no-leak-guard: the same test passes.
    (pytester.path / ".metaflow").rmdir()
    pytester.runpytest_subprocess("--metaflow-no-leak-guard").assert_outcomes(passed=1)


def _notebook(path: Path, cells: list[str]) -> None:
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, str(path))


def test_run_notebook_has_the_leak_guard(pytester: pytest.Pytester) -> None:
    _notebook(pytester.path / "leaky.ipynb", ["import pathlib\npathlib.Path('.metaflow').mkdir()"])
    pytester.makepyfile("def test_leaky(run_notebook):\n    run_notebook('leaky.ipynb')\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*pytest-metaflow leak guard*", f"*Metaflow file written outside the store: {pytester.path}/.metaflow"]
    )


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_hung_kernel_and_what_it_started_are_reaped_by_the_watchdog_when_pytest_dies(
    pytester: pytest.Pytester,
) -> None:
    pids = pytester.mkdir("pids")
    # The kernel hangs with a child of its own (a bounded `sleep`). ipykernel's parent poller ends the
    # kernel when pytest dies, never its child: the session watchdog must find that by token and group.
    _notebook(
        pytester.path / "hung.ipynb",
        [
            "import os, pathlib, subprocess, time\n"
            f"pids = pathlib.Path({str(pids)!r})\n"
            "child = subprocess.Popen(['sleep', '120'])\n"
            "(pids / 'child').write_text(str(child.pid))\n"
            "(pids / 'kernel').write_text(str(os.getpid()))\n"
            "time.sleep(120)"
        ],
    )
    pytester.makepyfile("def test_hung(run_notebook):\n    run_notebook('hung.ipynb', timeout=600)\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--basetemp={pytester.path / 'bt'}"],
        cwd=pytester.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 180
        while not (pids / "kernel").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the kernel never started"
            time.sleep(0.2)
        time.sleep(0.2)  # the file's content is written
        started = {p.name: int(p.read_text()) for p in pids.iterdir()}
        assert all(_alive(pid) for pid in started.values()), started
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 60
        while any(_alive(pid) for pid in started.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [name for name, pid in started.items() if _alive(pid)] == [], "outlived pytest"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in started.values():  # ours: started by the pytest above
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat: the linux backend")
def test_fork_count_counts_every_process_created() -> None:
    from pytest_metaflow import _processes

    before = _processes.fork_count()
    assert isinstance(before, int)
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    after = _processes.fork_count()
    assert after is not None and after > before


@pytest.mark.parametrize("backend", ["linux", "psutil"])
def test_kill_with_nothing_left_scans_once_unless_processes_appear(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing of the run is alive: one scan is proof enough when no process was created while it
    ran; when some were (a chain member may have been missed), three empty scans in a row."""
    from pytest_metaflow import _processes

    if backend == "linux" and _processes.backend() != "linux":
        pytest.skip("the linux backend is not available here")
    monkeypatch.setenv(_processes.BACKEND_VAR, backend)
    scans: list[int] = []
    table = _processes._table
    monkeypatch.setattr(_processes, "_table", lambda: scans.append(1) or table())
    token = _processes.new_token()  # no process holds it

    monkeypatch.setattr(_processes, "fork_count", lambda: 7)  # a quiet machine
    assert _processes.kill_processes([token]) == []
    assert len(scans) == (1 if backend == "linux" else 3)  # the portable backend keeps its three scans

    scans.clear()
    counter = iter(range(1000))
    monkeypatch.setattr(_processes, "fork_count", lambda: next(counter))  # processes keep appearing
    assert _processes.kill_processes([token]) == []
    assert len(scans) == 3
