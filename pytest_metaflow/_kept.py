"""Keeping the stores of failed (or all) tests for a post-mortem: ``--metaflow-keep``.

Kept stores go to ``<pytest's temp root>/metaflow-kept/<session>/<test>``: next
to pytest's numbered ``pytest-N`` base temp dirs, one directory per session,
named like it (``/tmp/pytest-of-<user>/metaflow-kept/pytest-12/``). The last
:data:`SESSIONS_KEPT` sessions are kept, as pytest does with its own. With
``--basetemp=DIR`` they go to ``DIR/metaflow-kept/`` and share its fate (pytest
empties ``DIR`` at the start of each session).

A session's directory is never pruned while that session lives: each process
storing there holds a lock file in it (``.lock-<host>-<pid>``, removed at exit),
as pytest locks its numbered base temp dirs; a lock whose process is gone (a
killed session) no longer counts.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import socket
import time
from collections.abc import Iterable
from pathlib import Path

SESSIONS_KEPT = 3
_NUMBERED = re.compile(r"pytest-\d+")


def session_dir(basetemp: Path, *, is_worker: bool) -> Path:
    """Where this session keeps stores; ``basetemp`` is this process's base temp dir.

    With a ``metaflow_keep`` setting, every test's store is made there and removed
    at teardown unless kept.
    """
    # xdist workers get <controller basetemp>/popen-gwN: the session is the controller's.
    controller = basetemp.parent if is_worker else basetemp
    if _NUMBERED.fullmatch(controller.name):
        return controller.parent / "metaflow-kept" / controller.name
    return controller / "metaflow-kept"


def target(session: Path, nodeid: str) -> Path:
    """A readable, unique directory name for a test id."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[-80:]  # the test name is at the end
    return session / f"{readable}-{hashlib.sha1(nodeid.encode()).hexdigest()[:6]}"


_LOCK_PREFIX = ".lock-"
_FOREIGN_LOCK_TTL = 3 * 24 * 3600  # pytest's own rule for locks it cannot check


def lock(session: Path) -> Path:
    """Mark ``session`` as in use by this process until it exits."""
    session.mkdir(parents=True, exist_ok=True)
    path = session / f"{_LOCK_PREFIX}{socket.gethostname()}-{os.getpid()}"
    path.write_text(str(os.getpid()))
    atexit.register(_unlock, path)
    return path


def _unlock(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def is_live(session: Path) -> bool:
    """Whether a process that stores in ``session`` still runs (by its lock file)."""
    host = socket.gethostname()
    try:
        locks = [p for p in session.iterdir() if p.name.startswith(_LOCK_PREFIX)]
    except OSError:
        return False
    for lock_file in locks:
        lock_host, _, pid = lock_file.name[len(_LOCK_PREFIX) :].rpartition("-")
        if lock_host == host and pid.isdigit():
            import psutil  # a runtime dependency; imported when a kept store is looked at

            if psutil.pid_exists(int(pid)):
                return True
        else:  # another machine sharing the directory: trust a recent lock
            try:
                if os.path.getmtime(lock_file) > time.time() - _FOREIGN_LOCK_TTL:
                    return True
            except OSError:
                pass
    return False


def prune(session: Path, keep: int = SESSIONS_KEPT) -> None:
    """Lock ``session``; remove the kept stores of old sessions: all but the newest ``keep``
    (this one included), never one whose session still runs."""
    lock(session)
    root = session.parent
    if root.name != "metaflow-kept" or not root.is_dir():
        return
    others = [d for d in root.iterdir() if d.is_dir() and d != session and _NUMBERED.fullmatch(d.name)]
    others.sort(key=lambda d: int(d.name.split("-")[1]))
    for old in others[: max(0, len(others) - (keep - 1))]:
        if not is_live(old):
            shutil.rmtree(old, ignore_errors=True)


def fresh(path: Path) -> Path:
    """An empty directory at ``path`` (a test run again in the same session replaces its store)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def tidy(store_path: Path) -> None:
    """Drop from a kept store what only a live test needs."""
    for scratch in ("tmp", "client_cache", "home"):
        shutil.rmtree(store_path / scratch, ignore_errors=True)


def snippet(destination: Path, runs: Iterable[tuple[str, str]]) -> str:
    """The report text: where the store is, and client code opening its ``(pathspec, status)`` runs."""
    lines = [
        f"store kept in {destination}",
        "open it with the Metaflow client:",
        "",
        "    from metaflow import Flow, Run, metadata, namespace",
        f'    metadata("local@{destination}")',
        "    namespace(None)",
    ]
    runs = list(runs)
    lines += [f'    run = Run("{pathspec}")  # {status}' for pathspec, status in runs]
    if not runs:
        lines.append('    # no run of this test is in the store; list a flow\'s runs with list(Flow("YourFlow"))')
    return "\n".join(lines)
