"""pytest-metaflow's task launcher: a per-run *task zygote* in a Metaflow runtime process.

Loaded by the extension's toplevel module in flow processes the plugin starts with
``PYTEST_METAFLOW_LAUNCHER=fork`` (never imported by pytest itself). What it does, and
why each trap is handled as it is, is in docs/performance.md ("Task launcher"). In
short:

* In a runtime process (``run``/``resume``/``spin``), when the flow object is about to
  import ``metaflow.cli`` (metaflow and the flow's module imported, the CLI not yet
  parsed, still single-threaded), the process forks a *zygote* and points
  ``sys.executable`` at a tiny shim script. Metaflow's runtime is otherwise untouched:
  it builds each task's command as ``[sys.executable, script, ...]`` and starts it with
  ``subprocess.Popen`` as always.
* The shim (a real process, the one the runtime waits on and kills) sends its argv,
  environment, cwd and stdin/stdout/stderr (``SCM_RIGHTS``) to the zygote over an
  abstract ``AF_UNIX`` socket. The zygote forks a child that becomes the task: fresh
  ``__main__`` from the script, Metaflow's unmodified CLI, the task's environment and
  fds. The shim relays signals to it and exits with its status (a signal death too);
  if the shim dies (SIGKILL by the runtime), the zygote SIGKILLs the child.
* Whenever the zygote cannot reproduce a fresh interpreter exactly (another script,
  ``-m``/``-c``, an environment that differs from the runtime's beyond the per-task
  keys, e.g. ``@environment``), it answers ``exec`` and the shim execs the real
  interpreter with the same argv: exactly what Metaflow would have run.
* The zygote dies with the runtime: ``PR_SET_PDEATHSIG`` plus a control pipe whose
  end the runtime holds; its children (the tasks) die with it the same way.
"""

import array
import atexit
import gc
import io
import marshal
import os
import selectors
import signal
import socket
import sys
import types
from typing import Any, Callable, Optional

Request = tuple[dict[str, Any], list[int]]

LAUNCHER_VAR = "PYTEST_METAFLOW_LAUNCHER"
# "1" (or "build"): runs with the launcher build the code package as Metaflow does.
CODE_PACKAGE_VAR = "PYTEST_METAFLOW_CODE_PACKAGE"
ADDRESS_VAR = "PYTEST_METAFLOW_ZYGOTE"
# Keys Metaflow's runtime sets per task (runtime.Worker._launch) or sets in its own
# os.environ after the zygote forked (the code package, runtime._launch_workers).
# Metaflow reads none of them at import time, so a forked task sees them as a fresh
# one would (os.environ is replaced in the child before any Metaflow code reads it).
PER_TASK_KEYS = frozenset(
    {
        "PYTHONUNBUFFERED",  # applied by rebuilding sys.stdout/stderr in the child
        "METAFLOW_RUN_ID",
        "METAFLOW_CODE_SHA",
        "METAFLOW_CODE_URL",
        "METAFLOW_CODE_DS",
        "METAFLOW_CODE_METADATA",
        ADDRESS_VAR,
    }
)
RUNTIME_COMMANDS = frozenset({"run", "resume", "spin"})
TASK_COMMANDS = frozenset({"step", "spin-step", "init"})
MAX_REQUEST = 1 << 20
PR_SET_PDEATHSIG = 1

# The shim a task's process runs (its path is the runtime's sys.executable): this file,
# written with a `#!<python> -IS` line by _make_shim.
SHIM_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pytest_metaflow_shim.py")


def install() -> None:
    """Arrange for a zygote in this process if it is a runtime the launcher can serve."""
    if not sys.platform.startswith("linux") or os.environ.get(LAUNCHER_VAR) != "fork":
        return
    args = set(sys.argv[1:])
    if not (args & RUNTIME_COMMANDS) or (args & TASK_COMMANDS):
        return
    script = sys.argv[0] if sys.argv else ""
    if not script.endswith(".py") or not os.path.isfile(script):
        return
    sys.meta_path.insert(0, _CliHook())


class _CliHook:
    """Meta-path finder that acts once, when ``metaflow.cli`` is first imported.

    That import happens in ``FlowSpec.__init__`` right before ``cli.main``: metaflow
    and the flow's module are imported, no CLI option has been built from the flow,
    and the runtime has not started its threads (code package): the moment to fork.
    """

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name != "metaflow.cli":
            return None
        try:
            sys.meta_path.remove(self)
        except ValueError:
            return None
        request = _start_zygote()
        if request is not None:  # in a forked task: become it (never returns)
            _run_task(*request)
        return None


def _start_zygote() -> Optional[Request]:
    import threading

    if threading.active_count() != 1:
        return None  # a thread started by the flow's module: forking would be unsafe
    main = sys.modules.get("__main__")
    script = os.path.realpath(sys.argv[0])
    main_file = getattr(main, "__file__", None)
    if main_file is None or os.path.realpath(main_file) != script:
        return None
    shim_dir = _make_shim()
    if shim_dir is None:
        return None
    address = f"pytest-metaflow-zygote-{os.getpid()}-{os.urandom(6).hex()}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        listener.bind("\0" + address)
        listener.listen(64)
    except OSError:
        listener.close()
        return None
    control_r, control_w = os.pipe()
    base_env = dict(os.environ)
    runtime_pid = os.getpid()
    _prewarm_git()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(control_w)
            request = _serve(listener, control_r, base_env, script, runtime_pid, shim_dir)
        except BaseException:
            os._exit(70)
        if request is None:
            os._exit(0)
        return request
    # The runtime.
    listener.close()
    os.close(control_r)
    os.set_inheritable(control_w, False)
    os.environ[ADDRESS_VAR] = address
    if os.environ.get(CODE_PACKAGE_VAR, "") not in ("1", "build"):
        _after_import("metaflow.package", _defer_code_package)
    _after_import("metaflow.runtime", _end_siblings_early)
    real = sys.executable
    sys.executable = os.path.join(shim_dir, "python")

    def stop() -> None:
        # Ends the zygote (it kills what is left of its tasks) before this runtime exits,
        # so that nothing of the run outlives it.
        import time

        sys.executable = real
        try:
            os.close(control_w)
        except OSError:
            pass
        deadline = time.monotonic() + 5
        while True:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                break
            if done or time.monotonic() > deadline:
                if not done:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                break
            time.sleep(0.002)
        import shutil

        shutil.rmtree(shim_dir, ignore_errors=True)

    atexit.register(stop)
    return None


def _prewarm_git() -> None:
    """Compute the run's git provenance once, before the zygote forks, so that tasks inherit it.

    Every process of a run asks ``metaflow_git.get_repository_info`` for the flow file's
    directory (the runtime for the code package's INFO, each task for its system
    metadata) and ``metaflow_version.get_version`` (``git ls-files``/``describe`` of
    metaflow's and each extension's file): up to eight ``git`` subprocesses per
    process, each answered the same during a run. Metaflow caches both answers in
    module globals, so a forked task that inherits the caches records the same values
    without starting ``git``.
    """
    try:
        from metaflow import metaflow_git, metaflow_version

        # The same path Metaflow's MetaflowEnvironment.get_environment_info passes.
        metaflow_git.get_repository_info(path=os.path.dirname(os.path.abspath(sys.argv[0])))
        # The version (git describe of metaflow and of each extension's toplevel file),
        # asked for by the CLI of every process (cli.start). The runtime asks right after this.
        metaflow_version.get_version()  # type: ignore[no-untyped-call]
    except Exception:
        pass  # Metaflow computes them itself, as without the launcher


class _AfterImport:
    """Meta-path finder that calls ``hook(module)`` right after ``name`` is executed."""

    def __init__(self, name: str, hook: Any) -> None:
        self.name, self.hook = name, hook

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != self.name:
            return None
        try:
            sys.meta_path.remove(self)
        except ValueError:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        exec_module = getattr(loader, "exec_module", None)
        if exec_module is None:
            return spec
        hook = self.hook

        def run(module: Any) -> None:
            exec_module(module)
            try:
                hook(module)
            except Exception:
                pass  # never break Metaflow's import: the run goes on as without the hook

        try:
            loader.exec_module = run
        except (AttributeError, TypeError):
            pass
        return spec


def _after_import(name: str, hook: Any) -> None:
    module = sys.modules.get(name)
    if module is not None:
        hook(module)
    else:
        sys.meta_path.insert(0, _AfterImport(name, hook))


class _Deferred(bytes):
    """The code package's placeholder: built on first read (nothing in a local run reads it)."""


def _defer_code_package(package: Any) -> None:
    """A local run's code package is built when something reads it, not at start.

    Metaflow's ``run`` builds a tar.gz of the flow's directory and of metaflow itself
    in a thread (``MetaflowPackage._package_and_upload``) and, unless
    ``FEAT_ALWAYS_UPLOAD_CODE_PACKAGE`` is on, stores it nowhere: only remote
    compute (``@batch``, ``@kubernetes``, which read ``package.blob``) uses it. The
    archive (``_make``) is deferred to the first ``blob`` read; everything else of the
    thread (decorators' ``package_init``, the environment INFO, the file list) runs
    as before. With a flow datastore to upload to, nothing is deferred.
    """
    cls = package.MetaflowPackage
    make = cls._make
    blob_with_timeout = cls.blob_with_timeout

    def _make(self: Any) -> Any:
        if self._flow_datastore is None:
            return _Deferred()
        return make(self)

    def _blob_with_timeout(self: Any, timeout: Optional[float] = None) -> Any:
        blob = blob_with_timeout(self, timeout)
        if isinstance(blob, _Deferred):
            blob = self._blob = make(self)
        return blob

    cls._make = _make
    cls.blob_with_timeout = _blob_with_timeout


def _end_siblings_early(runtime: Any) -> None:
    """A failed run kills its still-running tasks at once instead of after 5 s.

    When a task fails, ``NativeRuntime.execute`` catches ``TaskFailed`` and calls
    ``_killall``, which logs ``[KILLED BY ORCHESTRATOR]`` in each live task's logs
    (``Worker.clean``) and then polls ``Worker.clean`` for up to 5 s — nothing told
    those tasks to stop (after Ctrl-C the terminal did: they get their 5 s) — before
    ``Worker.kill`` (SIGKILL). Here ``clean`` does what the runtime does at the end of
    the wait right away: the same log line, the same kill, the same ``killed``
    metadata; only a sibling that would have finished within the 5 s is killed instead.
    """
    worker = runtime.Worker
    clean = worker.clean

    def _clean(self: Any) -> Any:
        done = clean(self)
        if done or isinstance(sys.exc_info()[1], KeyboardInterrupt):
            return done
        self.kill()
        return True

    worker.clean = _clean


def _make_shim() -> Optional[str]:
    import tempfile

    python = sys.executable
    if not python or not os.path.isabs(python) or len(python) > 200 or "\n" in python or " " in python:
        return None  # not usable in a #! line
    try:
        shim_dir = tempfile.mkdtemp(prefix="mf-launch-")
        path = os.path.join(shim_dir, "python")
        with open(SHIM_SOURCE) as source, open(path, "w") as f:
            f.write(f"#!{python} -IS\n" + source.read())
        os.chmod(path, 0o755)
        if not os.access(path, os.X_OK):  # a noexec temporary directory
            raise OSError("shim not executable")
    except OSError:
        return None
    return shim_dir


def _pdeathsig() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _serve(
    listener: socket.socket, control_r: int, base_env: dict[str, str], script: str, runtime_pid: int, shim_dir: str
) -> Optional[Request]:
    """The zygote's loop. Returns ``(request, fds)`` in a forked task, ``None`` when done."""
    _pdeathsig()
    if os.getppid() != runtime_pid:
        return None
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runtime's to handle
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)  # hold none of the runtime's pipes
    os.close(null)
    cov = _coverage()
    if cov is not None:
        cov._auto_save = False  # the runtime saves its own data; the zygote has none to add
        cov.stop()
    # What CPython's gc docs advise for a pre-fork server: the objects the zygote holds
    # now (metaflow, the flow's module: ~100 MB of heap) go to the permanent generation,
    # so that a task's collections never walk them. Otherwise each task's first full
    # collection writes to every inherited object's header and copies nearly every page
    # of the heap (measured: a third of a forked run's CPU on a 10-wide foreach).
    global _tree_modules
    _tree_modules = flow_tree_modules(script)
    gc.collect()
    gc.freeze()
    del shim_dir  # removed by the runtime's exit handler
    return serve_forks(listener, control_r, lambda conn: _accept(conn, base_env, script), _kill)


def serve_forks(
    listener: socket.socket,
    control: int,
    accept: Callable[[socket.socket], Optional[Request]],
    kill: Callable[[int], None],
    on_fork: Optional[Callable[[int, dict[str, Any]], None]] = None,
    child_closes: tuple[int, ...] = (),
) -> Optional[Request]:
    """The accept/fork/reap loop of the task zygote and of the runtime server.

    Each connection ``accept`` takes (``None``: the shim execs) is forked: the child
    returns ``(request, fds)`` (having closed the loop's fds and ``child_closes``), the
    parent calls ``on_fork(pid, request)``, sends the pid, then the wait status when the
    child ends. A shim's connection becoming readable means the shim is gone: ``kill``
    its child. EOF on ``control`` ends the loop after killing every child still running;
    returns ``None`` in the parent once all are reaped.
    """
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, "accept")
    sel.register(control, selectors.EVENT_READ, "control")
    sel.register(wake_r, selectors.EVENT_READ, "wake")
    children: dict[int, socket.socket] = {}
    conns: dict[Any, int] = {}
    closing = False
    while not closing or children:
        for key, _ in sel.select(timeout=1.0 if closing else None):
            what = key.data
            if what == "control":
                try:
                    data = os.read(control, 4096)
                except OSError:
                    data = b""
                if data:
                    continue
                closing = True
                sel.unregister(control)
                for pid in children:
                    kill(pid)
            elif what == "wake":
                try:
                    os.read(wake_r, 4096)
                except BlockingIOError:
                    pass
            elif what == "accept":
                try:
                    conn, _ = listener.accept()
                except OSError:
                    continue
                outcome = accept(conn)
                if outcome is None:
                    conn.close()
                    continue
                request, fds = outcome
                pid = os.fork()
                if pid == 0:
                    signal.set_wakeup_fd(-1)
                    sel.close()
                    for fd in (listener.fileno(), control, wake_r, wake_w, *child_closes):
                        try:
                            os.close(fd)
                        except OSError:
                            pass
                    for c in list(conns) + [conn]:
                        c.close()
                    return request, fds
                for fd in fds:
                    os.close(fd)
                if on_fork is not None:
                    on_fork(pid, request)
                try:
                    conn.send(str(pid).encode())
                except OSError:
                    kill(pid)
                children[pid] = conn
                conns[conn] = pid
                sel.register(conn, selectors.EVENT_READ, "conn")
            elif what == "conn":
                # The shim never writes after its request: readable means it is gone
                # (SIGKILLed by whoever started it): so goes its child.
                owner = conns.get(key.fileobj)
                if owner is not None:
                    kill(owner)
        while True:  # reap every child (tracked or not) without blocking
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            done = children.pop(pid, None)
            if done is not None:
                conns.pop(done, None)
                try:
                    sel.unregister(done)
                except (KeyError, ValueError):
                    pass
                try:
                    done.send(str(status).encode())
                except OSError:
                    pass
                done.close()
    return None


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _accept(conn: socket.socket, base_env: dict[str, str], script: str) -> Optional[Request]:
    """Read a shim's request; ``(request, fds)`` to fork it, ``None`` after answering ``exec``."""
    fds: list[int] = []
    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        uid = array.array("i", creds)[1]
        msg, ancdata, flags, _ = conn.recvmsg(MAX_REQUEST, socket.CMSG_SPACE(3 * 4))
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(array.array("i", data[: len(data) - len(data) % 4]))
        if uid != os.getuid() or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(fds) != 3:
            raise ValueError("unusable request")
        request = decode_request(msg)
        if _forkable(request, base_env, script):
            return request, fds
        conn.send(b"exec")
    except (OSError, ValueError):
        try:
            conn.send(b"exec")
        except OSError:
            pass
    for fd in fds:
        os.close(fd)
    return None


def decode_request(msg: bytes) -> dict[str, Any]:
    """A shim's request (marshal: the shims run this interpreter); ``ValueError`` if malformed."""
    try:
        request: Any = marshal.loads(msg)
    except (EOFError, TypeError, ValueError) as e:
        raise ValueError("unreadable request") from e
    if not isinstance(request, dict):
        raise ValueError("malformed request")
    argv, env, cwd = request.get("argv"), request.get("env"), request.get("cwd")
    if not (
        isinstance(argv, list)
        and all(isinstance(a, str) for a in argv)
        and isinstance(env, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
        and isinstance(cwd, str)
    ):
        raise ValueError("malformed request")
    return request


def _forkable(request: dict[str, Any], base_env: dict[str, str], script: str) -> bool:
    argv, env, cwd = request["argv"], request["env"], request["cwd"]
    if not argv or os.path.realpath(os.path.join(cwd, argv[0])) != script:
        return False
    for key in set(env) | set(base_env):
        if key not in PER_TASK_KEYS and env.get(key) != base_env.get(key):
            return False
    return True


def _coverage() -> Any:
    coverage = sys.modules.get("coverage")
    if coverage is None:
        return None
    try:
        return coverage.Coverage.current()
    except Exception:
        return None


def _become(request: dict[str, Any], fds: list[int]) -> None:
    """Turn this forked process into what ``python <argv>`` would have started."""
    _pdeathsig()
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for target, fd in zip((0, 1, 2), fds):
        os.dup2(fd, target)
    for fd in set(fds) - {0, 1, 2}:
        os.close(fd)
    env = {k: v for k, v in request["env"].items() if k != ADDRESS_VAR}
    os.environ.clear()
    os.environ.update(env)
    os.chdir(request["cwd"])
    # What the extension's toplevel module does at import in a fresh process (it ran
    # once, in the runtime): every process of a run reads /dev/null as stdin.
    if env.get("PYTEST_METAFLOW_NO_STDIN") == "1":
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
    _reset_stdio(bool(env.get("PYTHONUNBUFFERED")))
    # random reseeds itself after fork (CPython); numpy's legacy global generator does not.
    np_random = sys.modules.get("numpy.random")
    if np_random is not None:
        try:
            np_random.seed()
        except Exception:
            pass
    coverage = sys.modules.get("coverage")
    if coverage is not None:
        # What coverage's own patch=fork does: stop the inherited collector without
        # saving it (the zygote stopped it already), and start a fresh one (its own
        # data file) from the task's environment, as the .pth file does in a new process.
        cov = _coverage()
        if cov is not None:
            cov._auto_save = False
            cov.stop()
        if os.environ.get("COVERAGE_PROCESS_CONFIG") or os.environ.get("COVERAGE_PROCESS_START"):
            try:
                coverage.process_startup(force=True)
            except Exception:
                pass


def _reset_stdio(unbuffered: bool) -> None:
    """sys.stdin/stdout/stderr as a fresh interpreter builds them on fds 0, 1, 2."""
    old = sys.stdout
    encoding = getattr(old, "encoding", None) or "utf-8"
    errors = getattr(old, "errors", None) or "strict"
    streams = []
    for fd, mode in ((0, "rb"), (1, "wb"), (2, "wb")):
        raw = io.FileIO(fd, mode, closefd=False)
        tty = raw.isatty()
        if mode == "rb":
            buf = io.BufferedReader(raw)
        elif unbuffered:
            buf = raw  # type: ignore[assignment]
        else:
            buf = io.BufferedWriter(raw)  # type: ignore[assignment]
        stream = io.TextIOWrapper(
            buf,
            encoding=encoding,
            errors="backslashreplace" if fd == 2 else errors,
            line_buffering=mode == "wb" and (tty or fd == 2) and not unbuffered,
            write_through=mode == "wb" and unbuffered,
        )
        stream.mode = "r" if mode == "rb" else "w"  # type: ignore[misc]
        streams.append(stream)
    sys.stdin, sys.stdout, sys.stderr = streams
    # The saved originals too, as a fresh interpreter has them (typeshed marks them final).
    for name, stream in zip(("__stdin__", "__stdout__", "__stderr__"), streams):
        setattr(sys, name, stream)


# The zygote's flow_tree_modules(), computed once before it forks any task (_serve): every
# task starts from the same sys.modules (a realpath per module per task cost ~20 ms a task).
_tree_modules: list[str] = []


def flow_tree_modules(script: str) -> list[str]:
    """Names of the modules in ``sys.modules`` loaded from ``script``'s directory tree (not packages installed there)."""
    script_dir = os.path.dirname(os.path.realpath(script)) + os.sep
    return [
        name
        for name, module in list(sys.modules.items())
        if (file := getattr(module, "__file__", None) or "")
        and "site-packages" not in file
        and not name.startswith(("metaflow", "pytest_metaflow"))
        and name != "__main__"
        and os.path.realpath(file).startswith(script_dir)
    ]


def fresh_main(**attributes: Any) -> types.ModuleType:
    """A new ``__main__`` with ``attributes``, installed as ``__main__`` (and ``__mp_main__``).

    metaflow.tuple_util (ForeachFrame) and metaflow's S3 put namedtuples in ``__main__``
    at import so that pickles name them there; a fresh interpreter has them: so does
    this one (they are carried over from the current ``__main__``).
    """
    old_main = sys.modules["__main__"]
    main = types.ModuleType("__main__")
    for name, value in attributes.items():
        setattr(main, name, value)
    for name, value in vars(old_main).items():
        if isinstance(value, type) and value.__module__ == "__main__" and "_fields" in vars(value):
            setattr(main, name, value)
    sys.modules["__main__"] = main
    if "__mp_main__" in sys.modules:  # multiprocessing aliases __main__ at its import
        sys.modules["__mp_main__"] = main
    return main


def _run_task(request: dict[str, Any], fds: list[int]) -> None:
    """Run the script as ``__main__`` in this forked process; ends the process with its status."""
    _become(request, fds)
    old_main = sys.modules["__main__"]
    path: str = old_main.__file__ or request["argv"][0]
    # Modules the flow file imported from its own tree run again in a fresh task: drop them.
    for name in _tree_modules:
        sys.modules.pop(name, None)
    attributes = ("__file__", "__loader__", "__spec__", "__package__", "__cached__", "__builtins__")
    main = fresh_main(**{name: getattr(old_main, name) for name in attributes if hasattr(old_main, name)})
    sys.argv = list(request["argv"])
    # sys.executable is the real interpreter here: the zygote forked before the runtime changed it.
    try:
        sys.orig_argv = [sys.executable] + sys.argv
    except Exception:
        pass
    with open(path, "rb") as f:
        source = f.read()
    code = compile(source, path, "exec")
    exec(code, main.__dict__)
    raise SystemExit(0)
