"""The pytest side of the runtime server (``_mfext/pytest_metaflow_server.py``), stage 2 of the launcher.

A per-pytest-process server, started as soon as a fork-mode runner's environment is
known, forks each run's Metaflow runtime (and each flow-file import check) from an
interpreter that imported metaflow once. The Runner's process is a shim (the one
Metaflow waits on, reads and kills) that hands its argv, environment, cwd and fds to
the server, or execs the real interpreter with the same argv when the server answers
``exec``. docs/performance.md ("Runtime server") says what it reproduces.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from ._launcher import LAUNCHER_VAR, server_enabled

SERVER_VAR = "PYTEST_METAFLOW_SERVER"  # the server's address, in the shim's environment only
_READY_TIMEOUT = 120.0  # seconds for the server to import metaflow (a loaded machine)


class _Server:
    """The pytest side of one runtime server: its process, address and shim.

    Started without waiting (:func:`prestart`: the server imports metaflow while the
    pytest process does its own work); :meth:`wait_ready` reads its answer once.
    """

    def __init__(self, proc: Any, address: str | None, shim: str | None, problem: str | None) -> None:
        self.proc = proc
        self.address = address
        self.shim = shim
        self.problem = problem
        self.owner = os.getpid()
        self.used = False  # a run or an import went to it (an unused one may be replaced)
        self._waited = proc is None
        self._lock = threading.Lock()

    def wait_ready(self) -> None:
        """Read the server's ``ready <address>`` (or ``exec <why>``) line, once."""
        with self._lock:
            if self._waited or self.owner != os.getpid():
                return
            self._waited = True
            _await_ready(self)

    def usable(self) -> bool:
        self.wait_ready()
        return (
            self.address is not None
            and self.shim is not None
            and self.owner == os.getpid()
            and self.proc is not None
            and self.proc.poll() is None
        )

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or self.owner != os.getpid():
            return
        try:
            proc.stdin.close()  # EOF: the server kills what it still runs and exits
        except OSError:
            pass
        try:
            proc.wait(timeout=30)
        except Exception:  # noqa: BLE001  # subprocess.TimeoutExpired
            proc.kill()
            proc.wait()
        if not self._waited and proc.stdout is not None:
            proc.stdout.close()


_server: _Server | None = None  # the one that served (or refused) the latest run
# Servers by the environment they were started with (its per-run keys as placeholders): a
# run whose environment differs from every one (a variable a test set, for instance) gets
# a server of its own, up to _MAX_SERVERS (one: the first run's environment); then its
# runtime starts fresh.
_servers: dict[tuple[tuple[str, str], ...], _Server] = {}
_MAX_SERVERS = 1  # tests raise it to have a server of their own
_servers_lock = threading.Lock()


def _mfext_module(name: str) -> Any:
    """A plain module of the extension directory, loaded without putting that directory on sys.path."""
    import importlib.util

    from . import _store

    full = f"pytest_metaflow._mfext_{name}"
    if full in sys.modules:
        return sys.modules[full]
    spec = importlib.util.spec_from_file_location(full, os.path.join(_store.EXTENSION_DIR, f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[full] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[full]
        raise
    return module


def _start_server(run_env: dict[str, str]) -> _Server:
    """Start a server for ``run_env`` (``Popen`` only: :meth:`_Server.wait_ready` waits for it)."""
    import atexit
    import subprocess

    server_module = _mfext_module("pytest_metaflow_server")
    from . import _store

    shim = os.path.join(_store.EXTENSION_DIR, "pytest_metaflow_shim.py")
    env = server_module.server_env(run_env)
    code = "import pytest_metaflow_server as s; s.main()"
    log = os.environ.get("PYTEST_METAFLOW_SERVER_LOG")  # why runs were exec'd (debugging)
    log_file = open(log, "ab") if log else None  # noqa: SIM115  # handed to the child, closed below
    # Started from the calling thread, which lives as long as the test session: the
    # server asks to die with the thread that started it (PR_SET_PDEATHSIG).
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "x" * server_module.ARGV_PAD_SIZE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log_file if log_file is not None else subprocess.DEVNULL,
        env=env,
        cwd="/",
        start_new_session=True,  # a terminal's Ctrl-C is pytest's: runs are torn down by the plugin
    )
    if log_file is not None:
        log_file.close()
    server = _Server(proc, None, shim, None)
    atexit.register(server.stop)
    return server


def _await_ready(server: _Server) -> None:
    import selectors
    import time

    proc = server.proc
    line = b""
    assert proc is not None and proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + _READY_TIMEOUT
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            line += chunk
    word, _, rest = line.decode(errors="replace").strip().partition(" ")
    if word == "ready" and rest:
        server.address = rest
        threading.Thread(target=_track_forks, args=(proc.stdout,), name="pytest-metaflow-server", daemon=True).start()
    else:
        proc.stdout.close()
        server.problem = rest or "the server did not start"


# The session watchdog of each run routed through the server, by the run's token.
_watchdogs: dict[str, Any] = {}


def _track_forks(stream: Any) -> None:
    """Track each runtime the server forks as the plugin tracks a fresh runtime: by its process group.

    A forked runtime leads a session and group of its own (not the shim's, which the
    runner registered): registered here under the run's token, with the session
    watchdog too, so that kills, the leak guard and a killed pytest's watchdog reach
    its group and its descendants (the tracker records them while it lives).
    """
    from . import _processes

    for raw in iter(stream.readline, b""):
        try:
            word, pid, start, token = raw.decode().split()
        except ValueError:
            continue
        if word != "fork":
            continue
        # The start time in the process backend's own unit (psutil's differs from /proc's).
        began = _processes._start_of(int(pid))
        if began is None and _processes.backend() == "linux":
            began = float(start)  # already gone: its group may still hold its tasks
        if began is None:
            continue
        group = _processes._REGISTRY.add_group(token, int(pid), began)
        watchdog = _watchdogs.get(token)
        if group is not None and watchdog is not None:
            watchdog.add_group(token, group.leader, group.start)
    stream.close()


def server_problem() -> str | None:
    """Why the session's server answers ``exec`` to every run (``None``: it serves, or never started)."""
    return None if _server is None else _server.problem


def _server_for(command: list[str], env: dict[str, str] | None) -> _Server | None:
    """The server (started if need be, not waited for) that may serve ``command`` with ``env``.

    Only fork-mode runs of a ``python flow.py`` command, without coverage measuring
    the run (coverage's child hooks start in a fresh interpreter only: such runs start
    fresh runtimes; their tasks still fork from the per-run zygote), with the plugin's
    extension on ``PYTHONPATH``. One server per environment (its per-run keys aside),
    up to ``_MAX_SERVERS``; a server no run or import has used yet gives its place up.
    """
    if (
        env is None
        or env.get(LAUNCHER_VAR) != "fork"
        or not server_enabled()
        or len(command) < 2
        or command[0] != sys.executable
        or not command[1].endswith(".py")
        or "COVERAGE_PROCESS_CONFIG" in env
        or "COVERAGE_PROCESS_START" in env
    ):
        return None
    from . import _store

    if _store.EXTENSION_DIR not in env.get("PYTHONPATH", "").split(os.pathsep):
        return None
    key = tuple(sorted(_mfext_module("pytest_metaflow_server").server_env(env).items()))
    with _servers_lock:
        server = _servers.get(key)
        if server is None or server.owner != os.getpid():
            if server is None and len(_servers) >= _MAX_SERVERS:
                idle = [k for k, s in _servers.items() if not s.used and s.owner == os.getpid()]
                if not idle:
                    return None
                _servers.pop(idle[0]).stop()  # started early for an environment no run used
            server = _servers[key] = _start_server(env)
    return server


def prestart(env: dict[str, str], flow_file: str) -> None:
    """Start the server a fork-mode run of ``flow_file`` with ``env`` would use, without waiting.

    Called where a run's environment is first known (``FixtureRunner()``): the server
    imports metaflow while the pytest process validates and loads the flow.
    """
    _server_for([sys.executable, flow_file], env)


def _use(command: list[str], env: dict[str, str] | None) -> _Server | None:
    """The server that will serve ``command`` with ``env`` (marked used, waited for), ``None`` if none can."""
    global _server
    server = _server_for(command, env)
    if server is None:
        return None
    server.used = True
    _server = server
    return server if server.usable() else None


def _route(command: list[str], env: dict[str, str] | None) -> tuple[list[str], dict[str, str] | None]:
    """``(command, env)`` of a run's root process: through the runtime server when it may serve it.

    :func:`_server_for` says which runs may go; everything the server cannot reproduce
    exactly is decided there, per run (the shim then execs).
    """
    server = _use(command, env)
    if server is None:
        return command, env
    assert env is not None and server.shim is not None and server.address is not None
    # The shim is run by the same interpreter; on "exec" it runs exactly `command`.
    return [command[0], "-I", "-S", server.shim, *command[1:]], {**env, SERVER_VAR: server.address}


class ImportTimeout(Exception):
    """A served flow-file import outlived its deadline (the child was killed)."""


def import_in_server(
    run_env: dict[str, str], code: str, args: list[str], env: dict[str, str], deadline: float | None
) -> tuple[int, bytes, bytes, bytes] | None:
    """Run ``python -c code *args`` (with ``env``, the cwd, stdin ``/dev/null``) forked from the runtime server.

    For ``_flowimport.validate``: ``args[0]`` is the flow file, ``args[1]`` the fd the
    code reports on (the server substitutes the one it passes). Returns ``(returncode,
    stdout, stderr, report)`` as a fresh child's would be, or ``None`` when no server
    may serve a run with ``run_env`` or the server declined (then run it fresh).
    ``deadline``: seconds before the child's group is killed and :class:`ImportTimeout`
    raised. Ctrl-C (any exception) kills the child's group too.
    """
    server = _use([sys.executable, args[0]], run_env)
    if server is None:
        return None
    assert server.address is not None
    import array
    import marshal
    import selectors
    import signal
    import socket
    import time

    # marshal, as the shims send (the server runs this interpreter).
    body = marshal.dumps({"kind": "import", "argv": ["-c", *args], "env": env, "cwd": os.getcwd(), "code": code})
    limit = None if deadline is None else time.monotonic() + deadline
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    rep_r, rep_w = os.pipe()
    null = os.open(os.devnull, os.O_RDWR)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = 0
    status: int | None = None
    buffers: dict[int, bytearray] = {out_r: bytearray(), err_r: bytearray(), rep_r: bytearray()}
    try:
        try:
            sock.connect("\0" + server.address)
            fds = array.array("i", [null, out_w, err_w, rep_w])
            sock.sendmsg([body], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
            reply = sock.recv(64)
        except OSError:
            return None
        finally:
            for fd in (null, out_w, err_w, rep_w):
                os.close(fd)
        if not reply.isdigit():
            return None  # "exec": the server cannot vouch for this import
        pid = int(reply)
        with selectors.DefaultSelector() as sel:
            for fd in buffers:
                sel.register(fd, selectors.EVENT_READ)
            sel.register(sock, selectors.EVENT_READ)
            pipes = set(buffers)
            while status is None or pipes:  # the child's status, and EOF of its pipes (as communicate())
                left = None if limit is None else limit - time.monotonic()
                if left is not None and left <= 0:
                    raise ImportTimeout
                for key, _ in sel.select(timeout=left):
                    if key.fileobj is sock:
                        data = sock.recv(64)
                        sel.unregister(sock)
                        if not data.lstrip(b"-").isdigit():
                            return None  # the server died (so did the child): run it fresh
                        status = int(data)
                    else:
                        chunk = os.read(key.fd, 65536)
                        if chunk:
                            buffers[key.fd] += chunk
                        else:
                            sel.unregister(key.fd)
                            pipes.discard(key.fd)
    finally:
        if pid and status is None:  # timed out, Ctrl-C, pytest-timeout, the server gone
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        sock.close()  # a connection closed early: the server kills the child's group too
        for fd in buffers:
            os.close(fd)
    return os.waitstatus_to_exitcode(status), bytes(buffers[out_r]), bytes(buffers[err_r]), bytes(buffers[rep_r])


def route_runs(spm: Any, watchdog: Any = None) -> None:
    """Send the root processes a Metaflow ``SubprocessManager`` starts through :func:`route`.

    ``watchdog``: the session's, told about each forked runtime's process group.
    """
    run_command, async_run_command = spm.run_command, spm.async_run_command

    def route(command: list[str], env: dict[str, str] | None) -> tuple[list[str], dict[str, str] | None]:
        routed = _route(command, env)
        token = (env or {}).get("PYTEST_METAFLOW_TOKEN")
        if token and watchdog is not None and routed[0] is not command:
            _watchdogs[token] = watchdog
        return routed

    def run(command: list[str], env: dict[str, str] | None = None, *args: Any, **kwargs: Any) -> int:
        command, env = route(command, env)
        pid: int = run_command(command, env, *args, **kwargs)
        return pid

    async def arun(command: list[str], env: dict[str, str] | None = None, *args: Any, **kwargs: Any) -> int:
        command, env = route(command, env)
        pid: int = await async_run_command(command, env, *args, **kwargs)
        return pid

    spm.run_command, spm.async_run_command = run, arun
