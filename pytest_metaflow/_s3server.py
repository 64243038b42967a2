"""One local S3 server (moto) per pytest session, shared by every xdist worker.

The first process that needs it takes a file lock in the session's shared temp
directory (the controller's basetemp: under xdist, the parent of a worker's
basetemp), starts the server unless the state file names a live one, and
writes the state file (pid, port). Others read it under the same lock.

The server runs this file as a script (not as part of the package: importing
the package would import pytest, a second of the server's start-up):
moto's ``ThreadedMotoServer`` bound to 127.0.0.1 on a port the kernel picks
(no race between choosing a free port and binding it), in its own session so
that a Ctrl-C at the terminal does not reach it. Its lifetime is the pytest
session's, not the lifetime of the worker that happened to start it:

- the controller (the process running the session; under xdist the process
  the workers hang from) stops it at session end (``stop``);
- the server itself polls that owner process and exits within a second once it
  is gone, so a SIGKILLed pytest leaves no server behind. The owner is
  recognised by pid *and* start time, so a reused pid does not keep it alive.

Stdlib only at import (it runs as a script): moto is imported in the server
process, boto3 never here.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

STATE_FILE = "pytest-metaflow-s3.json"
LOCK_FILE = "pytest-metaflow-s3.lock"
START_TIMEOUT = 60.0  # generous: a loaded CI box; the start itself takes 1-2 s
_READY = "PYTEST_METAFLOW_S3_READY"
# Servers this process started: holding the Popen keeps it from warning
# "subprocess is still running" when collected, and lets stop() reap it.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass
class ServerInfo:
    """A running local S3 server: its process and where it listens."""

    pid: int
    port: int
    host: str = "127.0.0.1"

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"


def start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (field 22 of ``/proc/<pid>/stat``); ``None`` without ``/proc``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def _alive(pid: int, started: str | None = None) -> bool:
    import psutil  # a runtime dependency, imported when the S3 server is used

    if not psutil.pid_exists(pid):
        return False
    if started is not None and start_time(pid) not in (None, started):
        return False  # the pid was reused
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return True  # no /proc (macOS): kill(0) said it exists


def _answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    # fcntl.flock rather than a lock-file library: a dozen stdlib lines, and the
    # kernel drops the lock when a holder dies (a SIGKILLed worker cannot wedge it).
    import fcntl

    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_state(directory: Path) -> ServerInfo | None:
    """The server the state file in ``directory`` names, if it is still alive."""
    try:
        data = json.loads((directory / STATE_FILE).read_text())
        info = ServerInfo(pid=int(data["pid"]), port=int(data["port"]), host=str(data.get("host", "127.0.0.1")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if _alive(info.pid, data.get("started")) else None


def ensure_server(directory: Path, owner_pid: int) -> ServerInfo:
    """The session's server: the running one, or a new one started now.

    Parameters
    ----------
    directory : Path
        The session's shared temp directory (lock and state file live there).
    owner_pid : int
        The process whose death ends the server (the pytest controller).
    """
    with _locked(directory):
        info = read_state(directory)
        if info is not None and _answers(info.port, info.host):
            return info
        if info is not None:  # alive but deaf: replace it
            _terminate(info.pid)
        info = _start(directory, owner_pid)
        (directory / STATE_FILE).write_text(
            json.dumps({"pid": info.pid, "port": info.port, "host": info.host, "started": start_time(info.pid)})
        )
        return info


def _start(directory: Path, owner_pid: int) -> ServerInfo:
    import importlib.util

    from .errors import PytestMetaflowError

    # Only look: the server process imports it (a second, not to be paid here too).
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        raise PytestMetaflowError(
            "the local S3 server needs moto: pip install 'moto[server]' boto3 (or pytest-metaflow[s3])"
        )
    # Nothing of the tests' environment that could point the server elsewhere.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTEST_METAFLOW_TOKEN", "MOTO_"))}
    log = open(directory / "pytest-metaflow-s3.log", "ab")
    try:
        proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), str(owner_pid), start_time(owner_pid) or "-"],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=str(directory),
            start_new_session=True,  # a terminal's Ctrl-C is for pytest, which then stops it
        )
    finally:
        log.close()
    port = _wait_ready(proc, directory)
    _children[proc.pid] = proc
    return ServerInfo(pid=proc.pid, port=port)


def _wait_ready(proc: subprocess.Popen[bytes], directory: Path) -> int:
    found: list[int] = []

    def read() -> None:
        for line in iter(proc.stdout.readline, b""):  # type: ignore[union-attr]
            text = line.decode(errors="replace").strip()
            if text.startswith(_READY):
                found.append(int(text.split()[1]))
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(START_TIMEOUT)
    if proc.stdout is not None:
        proc.stdout.close()
    if not found:
        from .errors import S3EndpointError

        proc.kill()
        proc.wait()
        log = directory / "pytest-metaflow-s3.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise S3EndpointError(
            f"the local S3 server (moto) did not start within {START_TIMEOUT:g} s; its log ({log}):\n{tail}"
        )
    return found[0]


def _terminate(pid: int, timeout: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        time.sleep(0.02)
    if _alive(pid):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    proc = _children.pop(pid, None)
    if proc is not None:
        proc.wait()


def stop(directory: Path) -> bool:
    """Stop the server named in ``directory`` (end of session); ``True`` if there was one."""
    if not (directory / STATE_FILE).exists():
        return False
    with _locked(directory):
        info = read_state(directory)
        if info is not None:
            _terminate(info.pid)
        with contextlib.suppress(OSError):
            (directory / STATE_FILE).unlink()
    return info is not None


def _serve(owner_pid: int, owner_started: str | None) -> None:
    """The server process: moto on 127.0.0.1, until SIGTERM or until the owner is gone."""
    import logging

    from moto.server import ThreadedMotoServer

    # werkzeug logs every request to stderr (our log file): errors only.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = server.get_host_and_port()[1]  # the port the kernel chose
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    print(f"{_READY} {port}", flush=True)
    while not done.wait(0.25):
        if not _alive(owner_pid, owner_started):
            break
    server.stop()


if __name__ == "__main__":
    _serve(int(sys.argv[1]), None if sys.argv[2] == "-" else sys.argv[2])
    os._exit(0)
