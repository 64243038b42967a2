# pytest-metaflow: the card writer finds the card root where the card reader looks.
#
# `card create` takes the local card root from CardDatastore.get_storage_root, which
# returns None when METAFLOW_CARD_LOCALROOT is set and otherwise walks up from the
# cwd (`<cwd>/.metaflow/mf.cards`), while get_cards() reads `<task's ds-root>/mf.cards`
# (Netflix/metaflow#2139). With a datastore sysroot configured, answer what the
# reader reads. Names are dunder-prefixed: Metaflow copies a toplevel module's other
# names into the `metaflow` namespace (modules excepted). Typing names are imported inside the
# functions for the same reason.
import os as __os


def __patch_card_root() -> None:
    from typing import Optional

    from metaflow import metaflow_config as config
    from metaflow.plugins.cards import card_datastore

    # A classmethod bound to the class: Metaflow's unannotated def reads as a plain Callable to mypy.
    original = card_datastore.CardDatastore.get_storage_root.__func__  # type: ignore[attr-defined]

    def get_storage_root(cls: type, storage_type: str) -> Optional[str]:
        # Read at call time (the runtime server re-reads the configuration per run).
        roots = {
            "local": (config.DATASTORE_SYSROOT_LOCAL, config.DATASTORE_LOCAL_DIR),
            "spin": (config.DATASTORE_SYSROOT_SPIN, config.DATASTORE_SPIN_LOCAL_DIR),
        }
        sysroot, local_dir = roots.get(storage_type, (None, None))
        if sysroot and local_dir:
            return __os.path.join(sysroot, local_dir, config.CARD_SUFFIX)
        result: Optional[str] = original(cls, storage_type)
        return result

    # Replacing the method is the point of this patch (mypy forbids assigning to a method).
    card_datastore.CardDatastore.get_storage_root = classmethod(get_storage_root)  # type: ignore[method-assign, assignment]


__patch_card_root()
del __patch_card_root


# pytest-metaflow: a step reading stdin gets EOF at once instead of blocking forever.
#
# Metaflow's runtime starts every task with stdin=PIPE and never writes to it nor
# closes it (runtime.Worker), so `input()` in a step waits for ever. Tests are not
# interactive: every process of a run started by the plugin reads /dev/null.
def __no_stdin() -> None:
    if __os.environ.get("PYTEST_METAFLOW_NO_STDIN") != "1":
        return
    try:
        fd = __os.open(__os.devnull, __os.O_RDONLY)
        __os.dup2(fd, 0)
        __os.close(fd)
    except OSError:  # no fd 0 to replace: reading it fails at once anyway
        pass


__no_stdin()


# pytest-metaflow: a run's root process (the runtime of `run`/`resume`, a `spin`) is a
# child subreaper that reaps every orphan it adopts.
#
# A step's helper whose parent exits (a daemon, a fork chain) is re-parented to the
# nearest subreaper ancestor instead of init, so it stays a descendant of the run's
# root, where the plugin's kill finds it by descent even after it left the run's
# process group and dropped its environment. A subreaper must reap what it adopts
# (zombies pile up otherwise), but never a child it started itself: its Popen (or
# whoever forked it) waits for that one, and a status stolen from a Popen reads 0.
# So every way this process creates a child records the child's (pid, start time)
# under a lock the reaper holds while it reaps; the reaper collects only exited
# children it did not create. The plugin asks for it with PYTEST_METAFLOW_SUBREAPER=1
# (Linux, process backend "linux"); the variable is removed at once, so the run's
# own tasks are not subreapers. The reaper thread starts with the first child this
# process creates, so the process stays single-threaded until then (the task
# launcher below forks its zygote at that point: a fork without other threads).
def __subreaper() -> None:
    import sys
    from typing import Any, Callable, Optional

    if __os.environ.get("PYTEST_METAFLOW_SUBREAPER") != "1" or not sys.platform.startswith("linux"):
        return
    argv = set(sys.argv[1:])
    if "step" in argv or not argv & {"run", "resume", "spin"}:
        return  # a task, a kernel, a `check`: not a run's root
    del __os.environ["PYTEST_METAFLOW_SUBREAPER"]
    import ctypes
    import subprocess
    import threading
    import time

    try:
        if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
            return
    except (OSError, AttributeError):
        return
    me = __os.getpid()
    lock = threading.RLock()
    # pid -> start time (None: unreadable, then the pid alone counts) of children made here
    own: dict[int, Optional[bytes]] = {}

    def stat_of(pid: int) -> Optional[tuple[bytes, bytes, int]]:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            return fields[0], fields[19], int(fields[1])  # state, start time, parent
        except (OSError, IndexError):
            return None

    started: list[bool] = []

    def remember(pid: object) -> None:
        if isinstance(pid, int) and pid > 0:
            stat = stat_of(pid)  # not reaped yet (nobody waited): readable even if it exited
            own[pid] = stat[1] if stat else None
            if not started:  # the reaper starts with the first child: no orphan exists before
                started.append(True)
                threading.Thread(target=reap, name="pytest-metaflow-reaper", daemon=True).start()

    def creating(
        make: Callable[..., Any], pid_of: Callable[[Any], object] = lambda result: result
    ) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with lock:  # the reaper never sees a new child before it is recorded
                result = make(*args, **kwargs)
                if __os.getpid() == me:  # not in a forked child
                    remember(pid_of(result))
                return result

        wrapper.__wrapped__ = make  # type: ignore[attr-defined]  # as functools.wraps sets it
        return wrapper

    # The one place every Popen starts its child: a private method, absent from typeshed.
    original_execute_child: Callable[..., Any] = subprocess.Popen._execute_child  # type: ignore[attr-defined]

    def _execute_child(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> Any:
        with lock:
            try:
                return original_execute_child(self, *args, **kwargs)
            finally:
                remember(getattr(self, "pid", None))

    subprocess.Popen._execute_child = _execute_child  # type: ignore[attr-defined]
    for name in ("fork", "posix_spawn", "posix_spawnp"):
        if hasattr(__os, name):
            setattr(__os, name, creating(getattr(__os, name)))
    if hasattr(__os, "forkpty"):
        __os.forkpty = creating(__os.forkpty, lambda result: result[0])
    try:
        import _posixsubprocess  # multiprocessing's spawn and forkserver start children with it

        _posixsubprocess.fork_exec = creating(_posixsubprocess.fork_exec)
    except (ImportError, AttributeError):
        pass
    # system() forks and waits inside C: no reaping while one is in flight.
    __os.system = creating(__os.system, lambda result: None)

    def children() -> set[int]:
        found: set[int] = set()
        try:
            tasks = __os.listdir(f"/proc/{me}/task")
        except OSError:
            return found
        for task in tasks:
            try:
                with open(f"/proc/{me}/task/{task}/children", "rb") as f:
                    found.update(int(p) for p in f.read().split())
            except (OSError, ValueError):
                pass
        return found

    if not __os.path.exists(f"/proc/{me}/task/{me}/children"):  # kernel without CONFIG_PROC_CHILDREN

        def children() -> set[int]:  # noqa: F811
            found: set[int] = set()
            for name in __os.listdir("/proc"):
                if name.isdigit():
                    try:
                        with open(f"/proc/{name}/stat", "rb") as f:
                            if int(f.read().rsplit(b")", 1)[1].split()[1]) == me:
                                found.add(int(name))
                    except (OSError, IndexError, ValueError):
                        pass
            return found

    def reap() -> None:
        while True:
            time.sleep(0.05)
            try:
                with lock:
                    live = children()
                    for pid in live:
                        stat = stat_of(pid)
                        if stat is None or stat[0] not in (b"Z", b"X"):
                            continue
                        if pid in own and own[pid] in (None, stat[1]):
                            continue  # its creator waits for it
                        try:
                            __os.waitid(__os.P_PID, pid, __os.WEXITED | __os.WNOHANG)
                        except ChildProcessError:
                            pass
                    for pid in [p for p in own if p not in live]:
                        stat = stat_of(pid)  # (the children lists are not atomic: check)
                        if stat is None or stat[2] != me or own[pid] not in (None, stat[1]):
                            del own[pid]  # reaped by its creator: the pid may be reused
            except Exception:  # a dead reaper would let zombies pile up: keep going
                pass


__subreaper()


# pytest-metaflow: the task launcher (a per-run task zygote, docs/performance.md).
# Only in processes started with PYTEST_METAFLOW_LAUNCHER=fork, and only in a runtime.
def __launcher() -> None:
    if __os.environ.get("PYTEST_METAFLOW_LAUNCHER") != "fork":
        return
    import pytest_metaflow_launcher  # type: ignore[import-not-found]  # on the flow's PYTHONPATH

    pytest_metaflow_launcher.install()


__launcher()

# What a process does at import, in order: the runtime server (pytest_metaflow_server.py),
# which imported metaflow once, replays them in each runtime it forks.
__process_hooks = (__no_stdin, __subreaper, __launcher)
del __no_stdin, __subreaper, __launcher
