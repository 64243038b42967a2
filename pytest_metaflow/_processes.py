"""Finding and killing every process a run started.

Each Runner made by the plugin gives its child a unique token in the environment
variable ``PYTEST_METAFLOW_TOKEN``. Every descendant inherits it (the Metaflow
runtime, its task processes, and anything a step spawns), even after being
re-parented to init, so scanning ``/proc/*/environ`` finds the whole tree where
Metaflow's own ``pkill -P`` reaches only direct children (and needs procps).
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from typing import Iterable, List

TOKEN_VAR = "PYTEST_METAFLOW_TOKEN"


def new_token() -> str:
    return "pmf-" + uuid.uuid4().hex


def find_processes(tokens: Iterable[str]) -> List[int]:
    """Pids of live processes whose environment carries one of ``tokens``."""
    needles = [f"{TOKEN_VAR}={t}\0".encode() for t in tokens]
    if not needles or not os.path.isdir("/proc"):
        return []
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                environ = f.read() + b"\0"
        except OSError:  # gone, or not ours to read
            continue
        if any(n in environ for n in needles):
            found.append(int(name))
    return found


def kill_processes(tokens: Iterable[str], timeout: float = 10.0) -> List[int]:
    """SIGKILL every process carrying one of ``tokens`` until none is left.

    Repeats the scan so that a process forked while we were killing its parent
    is caught too. Returns the pids that were killed.
    """
    tokens = list(tokens)
    killed: List[int] = []
    deadline = time.monotonic() + timeout
    while True:
        pids = find_processes(tokens)
        if not pids or time.monotonic() > deadline:
            return killed
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except OSError:
                pass
        time.sleep(0.02)
