"""Finding and killing every process a run started, even after pytest itself died.

A run is tracked three ways, because each alone can be escaped:

- **its process group.** The plugin starts each run's root process (the
  Metaflow runtime, a spin) through a two-line shim that calls ``setsid()`` and
  then ``exec``s Metaflow's command: the root keeps its pid and command line and
  leads a session and process group of its own. Every descendant inherits the
  group unless it calls ``setsid``/``setpgid`` itself, whatever it does with its
  environment or its process title. ``killpg`` reaches the whole group at once,
  so a chain that forks and exits every few milliseconds cannot outrun it.
- **descent.** Descendants of a run's root are found by walking the process
  table (parent pids). A background thread records them while the run lives, so
  a process that left the group and whose parent has exited is still known. On
  Linux each run's root is made a *child subreaper* (``PR_SET_CHILD_SUBREAPER``,
  by the plugin's Metaflow extension, asked for with ``PYTEST_METAFLOW_SUBREAPER``):
  an orphan of the run is re-parented to the root instead of init, so it stays
  its descendant; the root reaps such orphans, and only those (never a child it
  started itself, whose ``Popen`` waits for it). pytest itself is no subreaper:
  reaping there would steal exit statuses from Popen/asyncio children that others
  wait for.
- **a token in the environment.** Each Runner gives its children
  ``PYTEST_METAFLOW_TOKEN=<token>/<n>``; every descendant inherits it, even
  after moving to another session. This is the net for a process that left the
  group, as a step's server started with ``start_new_session=True`` does.

Process tables come from ``/proc`` on Linux (stdlib only, so that the watchdog
can run this file with ``python -I -S``) and from psutil elsewhere; setting
``PYTEST_METAFLOW_PROCESS_BACKEND=psutil`` forces the portable path on Linux
(CI runs the suite that way too). What a backend cannot guarantee is returned
by :func:`limitations` and shown in pytest's report header.

pytest can die without running any teardown: pytest-timeout's ``thread`` method
ends it with ``os._exit``, and SIGTERM, SIGKILL or the OOM killer give it no say.
So a tiny watchdog process outlives it: started lazily in its own session (a
Ctrl-C at the terminal does not reach it), running this very file, reading
registrations (tokens, run groups, paths) from a pipe whose only writer is
pytest. While pytest lives it records the runs' descendants; when the pipe
reaches EOF (pytest exited, however it exited) it kills every registered run
and deletes every registered path, then exits. What pytest tore down itself is
unregistered first, so a normal exit kills nothing.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from typing import IO, Any, NamedTuple

TOKEN_VAR = "PYTEST_METAFLOW_TOKEN"
BACKEND_VAR = "PYTEST_METAFLOW_PROCESS_BACKEND"
SUBREAPER_VAR = "PYTEST_METAFLOW_SUBREAPER"  # read by _mfext in a run's root
_LINUX = sys.platform.startswith("linux") and os.path.isdir("/proc")
_TRACK_EVERY = 0.5  # seconds between two records of the runs' descendants
# exec'd by each run's root before Metaflow's command: same pid, same argv, own session.
_SHIM = "import os,sys\ntry:os.setsid()\nexcept OSError:pass\nos.execv(sys.argv[1],sys.argv[1:])"


def new_token() -> str:
    return "pmf-" + uuid.uuid4().hex


def backend() -> str:
    """``"linux"`` (``/proc``, subreaper) or ``"psutil"`` (portable; forced by ``PYTEST_METAFLOW_PROCESS_BACKEND``)."""
    if os.environ.get(BACKEND_VAR, "").strip().lower() == "psutil" or not _LINUX:
        return "psutil"
    return "linux"


def describe_backend() -> str:
    """One line for the report header: how runs' processes are tracked here."""
    if backend() == "linux":
        return "linux backend (process groups, descent with each run's root a child subreaper, tokens)"
    return "psutil backend (process groups, descent, tokens)"


def limitations() -> list[str]:
    """Guarantees the process backend of this platform cannot give, one line each (for the report header)."""
    if backend() == "linux":
        return []
    return [
        "no child subreaper on this platform (or the portable process backend is forced): a process "
        "that a run's step starts in a new session with a cleared environment, and whose parent "
        "exits within 0.5 s, cannot be traced to its run and may outlive the test"
    ]


# -- the process table ---------------------------------------------------------------


class Proc(NamedTuple):
    pid: int
    ppid: int
    pgid: int
    sid: int | None
    start: float  # start time, in the backend's own unit: with the pid, identifies the process
    zombie: bool


def other_pids() -> list[int]:
    """Pids of every process but this one, newest first (none where there is no ``/proc``).

    Newest first: a process that lives a few milliseconds (a fork chain's member)
    is read right after the listing, before it is gone.
    """
    me = os.getpid()
    names = os.listdir("/proc") if os.path.isdir("/proc") else []
    return sorted((int(n) for n in names if n.isdigit() and int(n) != me), reverse=True)


def read_proc(pid: int, name: str) -> bytes | None:
    """``/proc/<pid>/<name>``, or ``None`` when the process is gone or not ours to read."""
    return read_proc_file(f"/proc/{pid}/{name}")


def fork_count() -> int | None:
    """Processes (and threads) created on this machine since boot (``/proc/stat``), ``None`` if unknown.

    Equal before and after a scan of ``/proc``: no process appeared while it ran.
    """
    stat = read_proc_file("/proc/stat")
    if stat is None:
        return None
    start = stat.find(b"\nprocesses ")
    if start < 0:
        return None
    end = stat.find(b"\n", start + 1)
    try:
        return int(stat[start + len(b"\nprocesses ") : end if end > 0 else None])
    except ValueError:
        return None


def read_proc_file(path: str) -> bytes | None:
    """The bytes of a ``/proc`` file, or ``None`` when it is gone or not ours to read."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _parse_stat(pid: int, stat: bytes | None) -> Proc | None:
    if not stat:
        return None
    fields = stat.rsplit(b")", 1)[1].split()
    # after the command: state ppid pgrp session ... starttime (field 22 of stat)
    return Proc(pid, int(fields[1]), int(fields[2]), int(fields[3]), float(fields[19]), fields[0] in (b"Z", b"X"))


def _table() -> dict[int, Proc]:
    """Every process of the machine (this one included)."""
    table: dict[int, Proc] = {}
    if backend() == "linux":
        for pid in other_pids() + [os.getpid()]:
            proc = _parse_stat(pid, read_proc(pid, "stat"))
            if proc is not None:
                table[pid] = proc
        return table
    import psutil  # type: ignore[import-untyped,unused-ignore]

    for p in psutil.process_iter(["ppid", "create_time", "status"]):
        try:
            pgid = os.getpgid(p.pid)
        except OSError:
            continue
        try:
            sid: int | None = os.getsid(p.pid)
        except OSError:  # some systems refuse it for another session's process
            sid = None
        info = p.info
        if info.get("ppid") is None or info.get("create_time") is None:
            continue
        zombie = info.get("status") == psutil.STATUS_ZOMBIE
        table[p.pid] = Proc(p.pid, info["ppid"], pgid, sid, info["create_time"], zombie)
    return table


def _start_of(pid: int) -> float | None:
    if backend() == "linux":
        proc = _parse_stat(pid, read_proc(pid, "stat"))
        return None if proc is None else proc.start
    import psutil  # type: ignore[import-untyped,unused-ignore]

    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def _environ_token(pid: int) -> str | None:
    """The value of ``PYTEST_METAFLOW_TOKEN`` in a process's environment, if readable."""
    if backend() == "linux":
        environ = read_proc(pid, "environ") or b""
        prefix = TOKEN_VAR.encode() + b"="
        if prefix not in environ:  # most processes: one C search instead of splitting them all
            return None
        for entry in environ.split(b"\0"):
            if entry.startswith(prefix):
                return entry[len(prefix) :].decode(errors="replace")
        return None
    import psutil  # type: ignore[import-untyped,unused-ignore]

    try:
        value = psutil.Process(pid).environ().get(TOKEN_VAR)
        return None if value is None else str(value)
    except (psutil.Error, OSError):
        return None


def _group_exists(pgid: int) -> bool:
    """Whether any process is in group ``pgid``: atomic, unlike a scan of the table
    (a chain that forks every few ms is never caught whole by a scan)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, not ours to signal
        return True
    return True


def _owned(value: str | None, tokens: Iterable[str]) -> bool:
    return value is not None and any(value == t or value.startswith(t + "/") for t in tokens)


def _descendants(table: dict[int, Proc], seeds: Iterable[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for proc in table.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    found: set[int] = set()
    todo = [s for s in seeds if s in table]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo.extend(children.get(pid, ()))
    return found


def processes_with(text: str) -> list[str]:
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


def describe_process(pid: int) -> str:
    """``pid: command line`` (or just the pid when it is gone)."""
    if backend() == "linux":
        cmdline = read_proc(pid, "cmdline")
        text = cmdline.replace(b"\0", b" ").decode(errors="replace").strip() if cmdline is not None else "?"
    else:
        import psutil  # type: ignore[import-untyped,unused-ignore]

        try:
            text = " ".join(psutil.Process(pid).cmdline()) or "?"
        except psutil.Error:
            text = "?"
    return f"pid {pid}: {text}"


# -- what belongs to a run -----------------------------------------------------------


class _Group(NamedTuple):
    token: str
    leader: int
    start: float


class _Registry:
    """The runs of this process: their groups (keyed by leader pid) and the descendants seen so far."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.groups: dict[int, _Group] = {}
        self.seen: dict[tuple[int, float], str] = {}  # (pid, start) -> token
        self.killed: set[tuple[int, float]] = set()
        # Groups that processes of ours created (setsid) outside their run's group: killed as a whole.
        self.adopted: dict[int, str] = {}
        self._tracker: threading.Thread | None = None

    def add_group(self, token: str, leader: int, start: float | None = None) -> _Group | None:
        start = _start_of(leader) if start is None else start
        if start is None:
            return None  # already gone: it started nothing that we could not find by token
        group = _Group(token, leader, start)
        with self.lock:
            self.groups[leader] = group
        self._track()
        return group

    def forget(self, tokens: Iterable[str]) -> None:
        tokens = list(tokens)
        with self.lock:
            for leader in [g.leader for g in self.groups.values() if _owned(g.token, tokens)]:
                self.groups.pop(leader, None)
            for key in [k for k, t in self.seen.items() if _owned(t, tokens)]:
                self.seen.pop(key, None)
            for pgid in [g for g, t in self.adopted.items() if _owned(t, tokens)]:
                self.adopted.pop(pgid, None)

    def groups_of(self, tokens: list[str]) -> list[_Group]:
        with self.lock:
            return [g for g in self.groups.values() if _owned(g.token, tokens)]

    def seen_of(self, tokens: list[str]) -> list[tuple[int, float]]:
        with self.lock:
            return [k for k, t in self.seen.items() if _owned(t, tokens)]

    def update(self, table: dict[int, Proc]) -> None:
        """Record the live descendants of every run; forget groups and processes that are gone."""
        with self.lock:
            for group in list(self.groups.values()):
                leader = table.get(group.leader)
                leader_alive = leader is not None and leader.start == group.start
                members = [p for p in table.values() if p.pgid == group.leader]
                # A group id stays reserved while any member (even a zombie) exists:
                # only then is a process in that group surely ours.
                if not leader_alive and not members and not _group_exists(group.leader):
                    del self.groups[group.leader]
                    continue
                seeds = [p.pid for p in members if not p.zombie] + ([group.leader] if leader_alive else [])
                for pid in _descendants(table, seeds):
                    proc = table[pid]
                    if not proc.zombie:
                        self.seen.setdefault((pid, proc.start), group.token)
            own = table.get(os.getpid())
            for (pid, _start), token in self.seen.items():
                found = table.get(pid)
                if found is not None and found.pgid not in self.groups and (own is None or found.pgid != own.pgid):
                    self.adopted.setdefault(found.pgid, token)
            in_use = {p.pgid for p in table.values()}
            for pgid in [g for g in self.adopted if g not in in_use and not _group_exists(g)]:
                del self.adopted[pgid]  # its id may be reused from now on
            for key in [k for k in self.seen if k[0] not in table or table[k[0]].start != k[1]]:
                del self.seen[key]
            self.killed = {k for k in self.killed if k[0] in table and table[k[0]].start == k[1]}

    def _track(self) -> None:
        with self.lock:
            if self._tracker is not None:
                return
            self._tracker = threading.Thread(target=self._loop, name="pytest-metaflow-tracker", daemon=True)
            self._tracker.start()

    def _loop(self) -> None:
        while True:
            time.sleep(_TRACK_EVERY)
            with self.lock:
                idle = not self.groups and not self.seen and not self.adopted
            if idle:
                continue
            try:
                self.update(_table())
            except Exception:  # a tracker that died would silently lose descendants: keep going
                pass


_REGISTRY = _Registry()


def register_run(token: str, pid: int) -> tuple[int, float] | None:
    """Track the process group led by ``pid`` (a run's root, or a Jupyter kernel) under ``token``."""
    group = _REGISTRY.add_group(token, pid)
    return None if group is None else (group.leader, group.start)


def in_new_session(command: list[str]) -> list[str]:
    """``command`` run in a session (and process group) of its own, keeping its pid and argv."""
    return [sys.executable, "-I", "-S", "-c", _SHIM, *command]


def root_env(env: dict[str, str] | None) -> dict[str, str] | None:
    """``env`` for a run's root: a new dict asking the root to be a child subreaper (linux backend)."""
    if env is None or backend() != "linux":
        return env
    return {**env, SUBREAPER_VAR: "1"}


def supervise(spm: Any, watchdog: Watchdog | None = None) -> None:
    """Start every process of a Metaflow ``SubprocessManager`` in its own group, tracked by its token.

    Wraps ``run_command``/``async_run_command`` of that one instance: the command
    goes through :func:`in_new_session`, and the new root's group is registered
    here and with ``watchdog`` under the token found in its environment.
    """
    run_command, async_run_command = spm.run_command, spm.async_run_command

    def register(pid: int, env: dict[str, str] | None) -> None:
        token = (env or {}).get(TOKEN_VAR)
        if token:
            group = register_run(token, pid)
            if group is not None and watchdog is not None:
                watchdog.add_group(token, *group)

    def run(command: list[str], env: dict[str, str] | None = None, *args: Any, **kwargs: Any) -> int:
        env = root_env(env)
        pid: int = run_command(in_new_session(command), env, *args, **kwargs)
        register(pid, env)
        return pid

    async def arun(command: list[str], env: dict[str, str] | None = None, *args: Any, **kwargs: Any) -> int:
        env = root_env(env)
        pid: int = await async_run_command(in_new_session(command), env, *args, **kwargs)
        register(pid, env)
        return pid

    spm.run_command, spm.async_run_command = run, arun


# -- finding and killing -------------------------------------------------------------


def _targets(tokens: list[str], table: dict[int, Proc]) -> tuple[list[int], set[int]]:
    """``(groups to killpg, live pids)`` of the runs of ``tokens``."""
    me = os.getpid()
    groups: list[int] = []
    seeds: set[int] = set()
    for group in _REGISTRY.groups_of(tokens):
        leader = table.get(group.leader)
        if leader is not None and leader.start == group.start:
            seeds.add(group.leader)
        members = [p for p in table.values() if p.pgid == group.leader]
        if members or group.leader in seeds or _group_exists(group.leader):
            groups.append(group.leader)
            seeds.update(p.pid for p in members if not p.zombie)
    with _REGISTRY.lock:
        groups += [g for g, t in _REGISTRY.adopted.items() if _owned(t, tokens) and _group_exists(g)]
    for pid, start in _REGISTRY.seen_of(tokens):
        if pid in table and table[pid].start == start:
            seeds.add(pid)
    for proc in table.values():
        if proc.pid != me and not proc.zombie and _owned(_environ_token(proc.pid), tokens):
            seeds.add(proc.pid)
    ancestors = set()
    walk: Proc | None = table.get(me)
    while walk is not None and walk.pid not in ancestors and walk.pid > 1:
        ancestors.add(walk.pid)
        walk = table.get(walk.ppid)
    live = {p for p in _descendants(table, seeds) if not table[p].zombie and p not in ancestors and p > 1}
    own = table.get(me)
    own_pgid = own.pgid if own is not None else os.getpgid(0)
    own_sid = own.sid if own is not None else os.getsid(0)
    # A process of ours in a session it (or an ancestor of ours) created: every member of
    # that session descends from its leader, so its group is ours to kill as a whole --
    # which stops a fork chain that left the run's group.
    for pid in live:
        proc = table[pid]
        if proc.sid is not None and proc.sid != own_sid and proc.pgid not in groups:
            groups.append(proc.pgid)
    return [g for g in groups if g != own_pgid and g > 1], live


def _sweep(tokens: list[str]) -> set[int]:
    """Kill token holders on sight, with the group of any in a session of its own.

    A fork chain's member lives milliseconds: by the time a full table is built
    it is gone and its child not yet listed. Killing its group the moment its
    token is read stops the whole chain. Returns the groups killed that way.
    """
    chased: set[int] = set()
    me = os.getpid()
    own_sid = os.getsid(0)
    if backend() == "linux":
        pids = other_pids()
    else:  # the bare pid list, newest first: building a full table first is too slow for a chain
        import psutil  # type: ignore[import-untyped,unused-ignore]

        pids = sorted(psutil.pids(), reverse=True)
    for pid in pids:
        if pid == me or not _owned(_environ_token(pid), tokens):
            continue
        try:
            if os.getsid(pid) != own_sid:
                pgid = os.getpgid(pid)
                os.killpg(pgid, signal.SIGKILL)
                chased.add(pgid)
        except OSError:  # gone, or getsid refused (another session, on some systems)
            pass
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return chased


def find_processes(tokens: Iterable[str]) -> list[int]:
    """Live pids of the runs of ``tokens`` (or extending one, ``token/n``): by group, descent and token."""
    tokens = list(tokens)
    if not tokens:
        return []
    return sorted(_targets(tokens, _table())[1])


def kill_processes(tokens: Iterable[str], timeout: float = 30.0) -> list[int]:
    """SIGKILL every process of the runs of ``tokens`` until none is left (within ``timeout``).

    Kills each run's process group as a whole (a fork chain cannot outrun it),
    then every descendant and token holder, and scans again, so that a process
    forked while its parent was being killed is caught too. Returns the pids killed.
    """
    tokens = list(tokens)
    killed: list[int] = []
    if not tokens:
        return killed
    deadline = time.monotonic() + timeout
    chased: set[int] = set()  # groups of token holders in sessions of their own: killed until empty
    linux = backend() == "linux"
    empty = 0
    while True:
        forks = fork_count() if linux else None
        chased |= _sweep(tokens)
        table = _table()
        _REGISTRY.update(table)
        groups, pids = _targets(tokens, table)
        groups = [g for g in dict.fromkeys([*groups, *chased]) if _group_exists(g)]
        chased &= set(groups)
        found = bool(pids or groups)
        # Nothing found three scans in a row, not once: a scan can miss a chain member
        # that lives milliseconds (forked after the listing, gone before it is read).
        empty = 0 if found else empty + 1
        # ... unless no process was created on the whole machine while this scan ran: then
        # every process alive now was listed and looked at, and a fork chain, which must
        # fork to live on, cannot have been missed. The common case (the run ended,
        # nothing of it is left) ends here, after one scan of a few ms.
        quiet = not found and forks is not None and fork_count() == forks
        if quiet or empty >= 3 or time.monotonic() > deadline:
            break
        if not found:
            # The portable backend's scans are slow and miss more: it waits longer between them.
            time.sleep(0.01 if linux else 0.05)
            continue
        for pgid in groups:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                with _REGISTRY.lock:
                    _REGISTRY.killed.add((pid, table[pid].start))
            except OSError:
                pass
        time.sleep(0.01)
    return killed


# -- the watchdog ------------------------------------------------------------------


class Watchdog:
    """The pytest side of the watchdog process: register what to clean up if pytest dies."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self.tokens: set[str] = set()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _send(self, command: str, value: str) -> None:
        if "\n" in value:
            raise ValueError(f"cannot register {value!r}")
        with self._lock:
            if self._proc is None:
                drop = (TOKEN_VAR, SUBREAPER_VAR, "COVERAGE_PROCESS_START", "COVERAGE_PROCESS_CONFIG")
                env = {k: v for k, v in os.environ.items() if k not in drop}
                # -S (no site-packages) where /proc does the work; psutil lives in site-packages.
                flags = ["-I", "-S"] if backend() == "linux" else ["-I"]
                self._proc = subprocess.Popen(
                    [sys.executable, *flags, os.path.abspath(__file__)],
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

    def add_group(self, token: str, leader: int, start: float) -> None:
        """Register a run's process group (its root's pid and start time) under ``token``."""
        self._send("group", f"{token} {leader} {start!r}")

    def discard_token(self, token: str) -> None:
        """Unregister a token and every group registered under it (or under ``token/n``)."""
        self.tokens.discard(token)
        _REGISTRY.forget([token])
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
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _watch(stream: IO[bytes]) -> None:
    """The watchdog's loop: read registrations until EOF, recording the runs' descendants; then clean up."""
    tokens: list[str] = []
    paths: list[str] = []
    fd = stream.fileno()
    buffer = b""
    while True:
        ready, _, _ = select.select([fd], [], [], _TRACK_EVERY)
        if not ready:
            with _REGISTRY.lock:
                busy = bool(_REGISTRY.groups or _REGISTRY.seen)
            if busy:
                _REGISTRY.update(_table())
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            command, _, value = raw.decode().partition(" ")
            if command == "token":
                tokens.append(value)
            elif command == "untoken":
                if value in tokens:
                    tokens.remove(value)
                _REGISTRY.forget([value])
            elif command == "group":
                token, leader, start = value.split(" ")
                _REGISTRY.add_group(token, int(leader), float(start))
            elif command == "path":
                paths.append(value)
            elif command == "unpath" and value in paths:
                paths.remove(value)
    with _REGISTRY.lock:
        tokens += [g.token for g in _REGISTRY.groups.values()]
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
    _REGISTRY._track = lambda: None  # type: ignore[method-assign]  # the loop above records
    _watch(sys.stdin.buffer)
