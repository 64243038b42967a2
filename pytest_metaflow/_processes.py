"""Finding and killing every process a run started, even after pytest itself died.

Each Runner made by the plugin gives its children a unique token in the
environment variable ``PYTEST_METAFLOW_TOKEN`` (one token per runner, extended
with ``/<n>`` for each run it starts). Every descendant inherits it (the
Metaflow runtime, its task processes, anything a step spawns), even after being
re-parented to init or moved to another session, so scanning ``/proc/*/environ``
finds the whole tree, where Metaflow's own ``pkill -P`` reaches only direct
children (and needs procps).

pytest can die without running any teardown: pytest-timeout's ``thread`` method
ends it with ``os._exit``, and SIGTERM, SIGKILL or the OOM killer give it no say.
So a tiny watchdog process outlives it: started lazily in its own session (a
Ctrl-C at the terminal does not reach it), running this very file with
``python -I -S`` (no site-packages, nothing of the user's environment), reading
registrations from a pipe whose only writer is pytest. When the pipe reaches EOF
(pytest exited, however it exited) the watchdog kills every registered token and
deletes every registered path, then exits. Tokens and paths that pytest tore
down itself are unregistered first, so a normal exit kills nothing.

This module is stdlib-only so that it can run as that script.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from typing import IO, Iterable, List, Optional, Set

TOKEN_VAR = "PYTEST_METAFLOW_TOKEN"


def new_token() -> str:
    return "pmf-" + uuid.uuid4().hex


def _matches(environ: bytes, tokens: List[str]) -> bool:
    for entry in environ.split(b"\0"):
        if entry.startswith(TOKEN_VAR.encode() + b"="):
            value = entry[len(TOKEN_VAR) + 1 :].decode(errors="replace")
            return any(value == t or value.startswith(t + "/") for t in tokens)
    return False


def other_pids() -> List[int]:
    """Pids of every process but this one (none where there is no ``/proc``)."""
    me = os.getpid()
    names = os.listdir("/proc") if os.path.isdir("/proc") else []
    return [int(n) for n in names if n.isdigit() and int(n) != me]


def read_proc(pid: int, name: str) -> Optional[bytes]:
    """``/proc/<pid>/<name>``, or ``None`` when the process is gone or not ours to read."""
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read()
    except OSError:
        return None


def processes_with(text: str) -> List[str]:
    """``"pid: command line"`` of live (not zombie) processes whose command line holds ``text``."""
    found = []
    for pid in other_pids():
        cmdline, stat = read_proc(pid, "cmdline"), read_proc(pid, "stat")
        if cmdline is None or stat is None or stat.rsplit(b")", 1)[1].split()[0] == b"Z":
            continue  # gone, or exited and waiting to be reaped
        line = cmdline.replace(b"\0", b" ").decode(errors="replace")
        if text in line:
            found.append(f"{pid}: {line}")
    return found


def find_processes(tokens: Iterable[str]) -> List[int]:
    """Pids of live processes whose token is one of ``tokens`` or extends one (``token/n``)."""
    tokens = list(tokens)
    if not tokens:
        return []
    # A zombie's environ is empty: not counted.
    return [pid for pid in other_pids() if _matches(read_proc(pid, "environ") or b"", tokens)]


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


def describe_process(pid: int) -> str:
    """``pid: command line`` (or just the pid when it is gone)."""
    cmdline = read_proc(pid, "cmdline")
    text = cmdline.replace(b"\0", b" ").decode(errors="replace").strip() if cmdline is not None else "?"
    return f"pid {pid}: {text}"


class Watchdog:
    """The pytest side of the watchdog process: register what to clean up if pytest dies."""

    def __init__(self) -> None:
        self._proc: Optional[subprocess.Popen[bytes]] = None
        self._lock = threading.Lock()
        self.tokens: Set[str] = set()

    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid if self._proc is not None else None

    def _send(self, command: str, value: str) -> None:
        if "\n" in value:
            raise ValueError(f"cannot register {value!r}")
        with self._lock:
            if self._proc is None:
                env = {k: v for k, v in os.environ.items() if k != TOKEN_VAR}
                self._proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", os.path.abspath(__file__)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=env,
                    cwd="/",
                    start_new_session=True,  # outside pytest's group: Ctrl-C does not reach it
                )
            stdin: IO[bytes] = self._proc.stdin  # type: ignore[assignment]
            try:
                stdin.write(f"{command} {value}\n".encode())
                stdin.flush()
            except (BrokenPipeError, ValueError):  # it died or was closed: nothing to tell
                pass

    def add_token(self, token: str) -> None:
        self.tokens.add(token)
        self._send("token", token)

    def discard_token(self, token: str) -> None:
        self.tokens.discard(token)
        if self._proc is not None:
            self._send("untoken", token)

    def add_path(self, path: str) -> None:
        self._send("path", str(path))

    def discard_path(self, path: str) -> None:
        if self._proc is not None:
            self._send("unpath", str(path))

    def close(self) -> None:
        """Kill what is still registered, close the pipe and let the watchdog exit.

        Killing here, not only in the watchdog, matters: Metaflow's pipe-reader
        threads are not daemons, so while a run lives the interpreter cannot exit
        and the pipe would never reach EOF.
        """
        kill_processes(self.tokens)
        self.tokens.clear()
        with self._lock:
            if self._proc is None:
                return
            proc, self._proc = self._proc, None
        try:
            proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _watch(stream: IO[bytes]) -> None:
    """The watchdog's loop: read registrations until EOF, then clean up."""
    tokens: List[str] = []
    paths: List[str] = []
    registry = {"token": tokens, "path": paths}
    for raw in iter(stream.readline, b""):
        command, _, value = raw.decode().rstrip("\n").partition(" ")
        if command in registry:
            registry[command].append(value)
        elif command.startswith("un") and command[2:] in registry and value in registry[command[2:]]:
            registry[command[2:]].remove(value)
    if tokens:
        kill_processes(tokens)
    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


if __name__ == "__main__":
    # Its own session already keeps a terminal's Ctrl-C away; be sure anyway.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _watch(sys.stdin.buffer)
