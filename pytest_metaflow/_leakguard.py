"""The leak guard: after a test's teardown, nothing its runs made may be left.

Checked after the plugin killed and cleaned up the test's runners: processes
carrying their tokens, Metaflow runs started from pytest without the fixture
(a bare ``metaflow.Runner``), and Metaflow's temporary directories (runner
FIFOs, log directories) left in the store's ``tmp``, where the fixtures' runs
put them. The system temp dir is not checked: other processes on the machine
(another pytest, an xdist sibling) create Metaflow temp dirs there, and a
directory cannot be traced back to the process that made it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, List, Set

from . import _processes

# What Metaflow's runner puts in its temp dirs (utils.temporary_fifo, CommandManager.run).
_METAFLOW_FILES = ("fifo", "stdout.log", "stderr.log")


def _metaflow_files(path: Path) -> List[str]:
    try:
        return sorted(os.listdir(path)) if path.is_dir() and not path.is_symlink() else []
    except OSError:
        return []


def _is_metaflow_temp(path: Path) -> bool:
    files = _metaflow_files(path)
    return bool(files) and set(files) <= set(_METAFLOW_FILES)


def _metaflow_children() -> Set[int]:
    """Live direct children of this process that are Metaflow runs started by a Runner."""
    me = str(os.getpid()).encode()
    found = set()
    for pid in _processes.other_pids():
        stat, cmdline = _processes.read_proc(pid, "stat"), _processes.read_proc(pid, "cmdline")
        if stat is None or cmdline is None:
            continue
        ppid = stat.rsplit(b")", 1)[1].split()[1:2]
        if ppid == [me] and b"--runner-attribute-file" in cmdline:
            found.add(pid)
    return found


class LeakGuard:
    """Snapshot taken before a test; :meth:`leaks` lists what it left behind."""

    def __init__(self, store_tmp: Path) -> None:
        self.store_tmp = Path(store_tmp)
        self._children_before = _metaflow_children()

    def leaks(self, tokens: Iterable[str]) -> List[str]:
        found = [
            f"process still running after teardown: {_processes.describe_process(pid)}"
            for pid in _processes.find_processes(tokens)
        ]
        found += [
            f"Metaflow run not started through the fixture, still running: {_processes.describe_process(pid)}"
            for pid in sorted(_metaflow_children() - self._children_before)
        ]
        found += [
            f"Metaflow temporary directory left: {p} ({', '.join(_metaflow_files(p))})"
            for p in sorted(self.store_tmp.glob("*"))
            if _is_metaflow_temp(p)
        ]
        return found
