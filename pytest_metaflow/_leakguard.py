"""The leak guard: after a test's teardown, nothing its runs made may be left.

Checked after the plugin killed and cleaned up the runners of a fixture
(``runner``, ``nbrunner``, ``runner_factory`` at session end; collected flows
use ``runner``):

- processes of its runs, found as the kill finds them: by process group,
  by descent (including orphans the subreaper adopted) and by token;
- Metaflow runs started from pytest without the fixture (a bare
  ``metaflow.Runner``) still running;
- Metaflow's temporary directories (runner FIFOs, log directories) left in the
  store's ``tmp``, where the fixtures' runs put them;
- Metaflow files written during the test into the current directory, a flow's
  directory or a run's cwd: ``.metaflow`` (datastore, cards), ``.metaflow_spin``,
  ``metaflow.s3.*`` temp dirs, NBRunner's ``<Flow>xxxxxxxx.py`` flow files.

The system temp dir is not checked: other processes on the machine (another
pytest, an xdist sibling) create Metaflow temp dirs there, and a directory
cannot be traced back to the process that made it.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from . import _processes

# What Metaflow's runner puts in its temp dirs (utils.temporary_fifo, CommandManager.run).
_METAFLOW_FILES = ("fifo", "stdout.log", "stderr.log")
# Metaflow's own names for what it writes relative to the cwd.
_METAFLOW_ENTRY = re.compile(r"^(\.metaflow|\.metaflow_spin|metaflow\.s3\..*|mf\.cards)$")
# Metaflow's NBRunner: NamedTemporaryFile(prefix=<FlowName>, suffix=".py") in base_dir.
_NBRUNNER_FILE = re.compile(r"^[A-Za-z_]\w*\.py$")
_SLACK = 1.0  # seconds: file systems with coarse timestamps


def _metaflow_files(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path)) if path.is_dir() and not path.is_symlink() else []
    except OSError:
        return []


def _is_metaflow_temp(path: Path) -> bool:
    files = _metaflow_files(path)
    return bool(files) and set(files) <= set(_METAFLOW_FILES)


def _is_nbrunner_file(path: Path) -> bool:
    if not _NBRUNNER_FILE.match(path.name) or len(path.stem) < 9:
        return False
    with contextlib.suppress(OSError, UnicodeDecodeError):
        text = path.read_text(encoding="utf-8")
        # NBRunner's file ends with the guard calling the flow, whose name is the file
        # name's prefix (8 random characters and ".py" follow).
        tail = text.rstrip().splitlines()[-2:]
        return tail == ["if __name__ == '__main__':", f"    {path.name[:-11]}()"]
    return False


def _newest_mtime(path: Path, depth: int = 3) -> float:
    """The newest modification time of ``path`` and what is under it, ``depth`` levels down."""
    try:
        newest = path.lstat().st_mtime
    except OSError:
        return 0.0
    if depth and path.is_dir() and not path.is_symlink():
        with contextlib.suppress(OSError):
            for child in path.iterdir():
                newest = max(newest, _newest_mtime(child, depth - 1))
    return newest


def metaflow_entries(directory: Path, since: float) -> list[Path]:
    """Metaflow files in ``directory`` created or written to at or after ``since``."""
    found = []
    with contextlib.suppress(OSError):
        for entry in directory.iterdir():
            if _METAFLOW_ENTRY.match(entry.name) or _is_nbrunner_file(entry):
                if _newest_mtime(entry) >= since - _SLACK:
                    found.append(entry)
    return sorted(found)


def _metaflow_children() -> set[int]:
    """Live direct children of this process that are Metaflow runs started by a Runner."""
    me = str(os.getpid()).encode()
    found = set()
    for pid in _processes.other_pids():
        stat = _processes.read_proc(pid, "stat")
        if stat is None or stat.rsplit(b")", 1)[1].split()[1:2] != [me]:
            continue  # not a child of ours: its command line is not read (one read per process)
        cmdline = _processes.read_proc(pid, "cmdline")
        if cmdline is not None and b"--runner-attribute-file" in cmdline:
            found.add(pid)
    return found


class LeakGuard:
    """Snapshot taken before a test; :meth:`leaks` lists what it left behind.

    Parameters
    ----------
    store_tmp : Path
        The store's ``tmp`` directory, where the runs' Metaflow temp dirs go.
    files : bool
        Check the cwd and the flows' directories for Metaflow files (off when the
        user's own Metaflow configuration decides where runs write).
    bare_runs : bool
        Report Metaflow runs started without the fixture (per-test guards only).
    """

    def __init__(self, store_tmp: Path, *, files: bool = True, bare_runs: bool = True) -> None:
        self.store_tmp = Path(store_tmp)
        self.files = files
        self.start = time.time()
        self.cwd = Path.cwd()
        self._children_before: set[int] | None = _metaflow_children() if bare_runs else None

    def leaks(self, tokens: Iterable[str], directories: Iterable[Path] = ()) -> list[str]:
        found = [
            f"process still running after teardown: {_processes.describe_process(pid)}"
            for pid in _processes.find_processes(tokens)
        ]
        if self._children_before is not None:
            found += [
                f"Metaflow run not started through the fixture, still running: {_processes.describe_process(pid)}"
                for pid in sorted(_metaflow_children() - self._children_before)
            ]
        found += [
            f"Metaflow temporary directory left: {p} ({', '.join(_metaflow_files(p))})"
            for p in sorted(self.store_tmp.glob("*"))
            if _is_metaflow_temp(p)
        ]
        if self.files:
            dirs = dict.fromkeys(d.resolve() for d in [self.cwd, *directories] if d.is_dir())
            for directory in dirs:
                if str(directory).startswith(str(self.store_tmp.parent.resolve())):
                    continue  # inside the store: that is where things belong
                found += [
                    f"Metaflow file written outside the store: {p}" for p in metaflow_entries(directory, self.start)
                ]
        return found

    def check(self, runners: Iterable[Any]) -> None:
        """Fail the test (at teardown) if the ``runners`` (torn down already) left anything behind."""
        runners = list(runners)
        directories = []
        for runner in runners:
            for path in (getattr(runner, "flow_file", None), getattr(runner, "cwd", None)):
                if path:
                    directories.append(Path(path) if os.path.isdir(path) else Path(path).parent)
        leaks = self.leaks([r.token for r in runners if getattr(r, "token", None)], directories)
        if leaks:
            pytest.fail(
                "pytest-metaflow leak guard: the test's runs left behind\n"
                + "\n".join(f"  {leak}" for leak in leaks)
                + "\n(--metaflow-no-leak-guard turns this check off)",
                pytrace=False,
            )
