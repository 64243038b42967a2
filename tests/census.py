"""Counts the processes an inner pytest session left running (Linux only).

Shared by tests/test_reliability.py and bench/stress.py (one census, so the suite and the
stress benchmark count leftovers the same way). A process is counted three ways: by
**descent** (this process becomes a child subreaper, so orphans of the inner session are
re-parented here and stay descendants), by an **environment marker** (``<marker>=<tag>``,
which an escaping helper may drop) and by **command line** (the tag is in the flows' path).
/proc is read directly: the census must not depend on the process backend under test.
No pytest import: bench/stress.py runs outside pytest.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time

from pytest_metaflow import _processes
from pytest_metaflow._processes import processes_with

PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37


def proc_table() -> dict[int, _processes.Proc]:
    """``{pid: Proc}`` of every process (this one included), from /proc."""
    table = {}
    for pid in _processes.other_pids() + [os.getpid()]:
        proc = _processes._parse_stat(pid, _processes.read_proc(pid, "stat"))
        if proc is not None:
            table[pid] = proc
    return table


def is_inner_pytest(pid: int) -> bool:
    """Whether ``pid`` runs ``python -m pytest`` (as pytester and bench/stress.py start inner sessions).

    Exact arguments, not a substring: flows under pytest's basetemp have "pytest" in
    every command line, and their orphans must be reaped here.
    """
    argv = (_processes.read_proc(pid, "cmdline") or b"").split(b"\0")
    return argv[1:2] == [b"-mpytest"] or argv[1:3] == [b"-m", b"pytest"]


class Census:
    """Live leftovers of inner sessions tagged ``tag``: by descent, environment marker, command line.

    Parameters
    ----------
    tag : str
        What the inner sessions' processes carry in their command line and in ``marker``.
    marker : str
        The environment variable set to ``tag`` for the inner sessions (the caller sets it).

    Raises
    ------
    OSError
        When this process cannot become a child subreaper (not Linux, or prctl refused).
    """

    def __init__(self, tag: str, marker: str) -> None:
        self.tag = tag
        self.marker = marker
        libc = ctypes.CDLL(None, use_errno=True)
        was = ctypes.c_int(0)
        libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(was), 0, 0, 0)
        self._was_subreaper = was.value
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "cannot become a child subreaper (needed to count by descent)")
        self.before = self._descendants(proc_table())
        # The inner pytest sessions (found by is_inner_pytest, or added by the caller):
        # their Popen waits for them, so the reaper leaves them alone.
        self.protected: set[int] = set()
        self._stop = threading.Event()
        # Orphans of the inner session come here while it runs (a re-forking chain makes
        # hundreds a second): collect the exited ones as they come.
        self._thread = threading.Thread(target=self._reaper, daemon=True)
        self._thread.start()

    def _children(self) -> dict[int, _processes.Proc]:
        found = {}
        for task in os.listdir("/proc/self/task"):
            for pid in (_processes.read_proc(os.getpid(), f"task/{task}/children") or b"").split():
                proc = _processes._parse_stat(int(pid), _processes.read_proc(int(pid), "stat"))
                if proc is not None:
                    found[proc.pid] = proc
        return found

    def _reaper(self) -> None:
        while not self._stop.wait(0.1):
            self._reap(self._children())

    def _descendants(self, table: dict[int, _processes.Proc]) -> set[tuple[int, float]]:
        return {(p, table[p].start) for p in _processes._descendants(table, [os.getpid()]) if p != os.getpid()}

    def _reap(self, table: dict[int, _processes.Proc]) -> None:
        # Orphans re-parented to this process: collect the exited ones.
        for proc in table.values():
            if proc.ppid == os.getpid() and not proc.zombie and is_inner_pytest(proc.pid):
                self.protected.add(proc.pid)
            if (
                proc.ppid == os.getpid()
                and proc.zombie
                and (proc.pid, proc.start) not in self.before
                and proc.pid not in self.protected
            ):
                try:
                    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG)
                except ChildProcessError:
                    pass

    def count(self) -> dict[int, str]:
        """``{pid: how it was found and its command line}`` of live leftovers, now."""
        table = proc_table()
        self._reap(table)
        found: dict[int, list[str]] = {}
        for pid, _start in self._descendants(table) - self.before:
            if not table[pid].zombie:
                found.setdefault(pid, []).append("descendant")
        for pid in _processes.other_pids():
            environ = _processes.read_proc(pid, "environ") or b""
            if f"{self.marker}={self.tag}".encode() in environ.split(b"\0") and pid in table and not table[pid].zombie:
                found.setdefault(pid, []).append("marker")
        for line in processes_with(self.tag):
            found.setdefault(int(line.split(":")[0]), []).append("command line")
        return {pid: f"{'+'.join(how)}: {_processes.describe_process(pid)[:200]}" for pid, how in found.items()}

    def leftovers(self, within: float) -> list[str]:
        """What is still alive after waiting up to ``within`` seconds (a watchdog may be at work)."""
        deadline = time.monotonic() + within
        while self.count() and time.monotonic() < deadline:
            time.sleep(0.2)
        return sorted(self.count().values())

    def kill_leftovers(self) -> None:
        """Ours by construction (descendants of this process or carrying the marker): stop them."""
        for _ in range(50):
            pids = self.count()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, 9)  # SIGKILL
                except OSError:
                    pass
            time.sleep(0.05)

    def close(self) -> None:
        """Stop the reaper, restore the subreaper flag, collect the last exits of what was adopted."""
        self._stop.set()
        self._thread.join()
        ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, self._was_subreaper, 0, 0, 0)
        # What was adopted stays this process's child: collect the last exits (after
        # kill_leftovers nothing adopted is alive any more).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            self._reap(self._children())
            if not any(
                p.zombie and p.pid not in self.protected and (p.pid, p.start) not in self.before
                for p in self._children().values()
            ):
                break
            time.sleep(0.1)
