"""pytest-metaflow's runtime server: forks a run's Metaflow runtime from a warm interpreter.

Started by the pytest process (``pytest_metaflow._launcher``), lazily, one per pytest
process, as ``python -c 'import pytest_metaflow_server; ...'`` with the environment of
a run in which every per-run key (the store's paths, ``METAFLOW_HOME``, ``TMPDIR``) is
replaced by a placeholder. It imports metaflow and its plugins once, then serves: the
Runner's process is a shim (the stage-1 shim of ``pytest_metaflow_launcher``, pointed at
this server) that sends its argv, environment, cwd and fds; the server forks a child
that becomes ``python flow.py <args>`` (see :func:`_become`), or answers ``exec`` and
the shim execs the real interpreter with the same argv. docs/performance.md ("Task
launcher", "Runtime server") lists what is reproduced and what is not.

Never imported by pytest itself: stdlib only until :func:`main` imports metaflow.
"""

import array
import gc
import json
import os
import signal
import socket
import sys
import types
from typing import Any, Optional

# pytest_metaflow_launcher (beside this file, on the flow processes' PYTHONPATH): imported by
# main(). The pytest process loads this file by path for server_env() only.
launcher: Any = None

ADDRESS_VAR = "PYTEST_METAFLOW_SERVER"
# Pads the server's exec-time environment and argv: a forked runtime writes its own
# environment and command line over them (what setproctitle does), so that
# /proc/PID/environ and /proc/PID/cmdline show the run's, as for a fresh runtime.
PAD_VAR = "PYTEST_METAFLOW_SERVER_PAD"
PAD_SIZE = 96 * 1024
ARGV_PAD_SIZE = 16 * 1024
PLACEHOLDER = "/nonexistent/pytest-metaflow-server-placeholder"
# Keys a run may set to its own value: Metaflow reads them at import only through
# metaflow.metaflow_config (re-executed in the child, see _reconfigure), Python's
# tempfile caches TMPDIR lazily (reset in the child); everything else reads them at
# call time. The server starts with a placeholder in each.
PER_RUN_KEYS = frozenset(
    {
        "TMPDIR",
        "METAFLOW_DATASTORE_SYSROOT_LOCAL",
        "METAFLOW_DATASTORE_SYSROOT_SPIN",
        "METAFLOW_CLIENT_CACHE_PATH",
        "METAFLOW_TEMPDIR",
        "METAFLOW_ARTIFACT_LOCALROOT",
        "METAFLOW_HOME",
        # The fallback user name when the environment has none (constant in a session, but
        # absent from the pytest process's environment, which flow-file imports get).
        "METAFLOW_USER",
        # The session's and the test's labels and tags for remote jobs (_remote.labels_env).
        "METAFLOW_KUBERNETES_LABELS",
        "METAFLOW_BATCH_DEFAULT_TAGS",
    }
)
# Per-run keys Metaflow parses as JSON (a dict) at import.
JSON_KEYS = frozenset({"METAFLOW_BATCH_DEFAULT_TAGS"})
# Keys the server never sees: the run's token (read by nobody in the run), the subreaper
# request (applied by replaying the extension in the child), the server's address.
# pytest's PYTEST_CURRENT_TEST (names the test; set in os.environ, read by no import).
PER_REQUEST_KEYS = frozenset({"PYTEST_METAFLOW_TOKEN", "PYTEST_METAFLOW_SUBREAPER", ADDRESS_VAR, "PYTEST_CURRENT_TEST"})
MAX_REQUEST = 1 << 20
# Keys the plugin's store adds to a run's environment that a flow-file import request
# (``kind: import``, the pytest process's environment) lacks: read at import only through
# metaflow.metaflow_config (re-read in the child, which answers ``fallback`` when a value
# changed that is not a placeholder) or by the plugin's extension (docs/performance.md).
STORE_KEYS = frozenset(
    {
        "METAFLOW_DEFAULT_DATASTORE",
        "METAFLOW_DEFAULT_METADATA",
        "METAFLOW_TOKEN_HOME",
        "METAFLOW_PROFILE",
        "PYTEST_METAFLOW_REMOTE",
        "PYTEST_METAFLOW_NO_STDIN",
        "PYTEST_METAFLOW_LAUNCHER",
    }
)
# The server's sys.path beyond '' and its PYTHONPATH (the interpreter's own part: stdlib,
# site-packages, .pth entries), in order: what a fresh interpreter adds after PYTHONPATH.
DEFAULT_PATH: list[str] = []
# Imported before serving (what every runtime imports); never metaflow.cli,
# cli_components.run_cmds or init_cmd: they build click options from the flow at import.
PREIMPORT = ("metaflow", "metaflow.plugins")


def server_env(run_env: dict[str, str]) -> dict[str, str]:
    """The environment to start the server with, from a run's environment."""
    env = {k: v for k, v in run_env.items() if k not in PER_REQUEST_KEYS}
    for key in PER_RUN_KEYS:
        if key in env:
            env[key] = _placeholder(PLACEHOLDER, key)
    env[PAD_VAR] = "x" * PAD_SIZE
    return env


def _placeholder(prefix: str, key: str) -> str:
    value = f"{prefix}/{key}"
    return json.dumps({"pytest-metaflow": value}) if key in JSON_KEYS else value


def _holds_placeholder(value: Any) -> bool:
    if isinstance(value, str):
        return PLACEHOLDER in value
    if isinstance(value, dict):
        return any(_holds_placeholder(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_placeholder(v) for v in value)
    return False


def main() -> None:
    """The server process: import, check, report readiness on stdout, serve on stdin's lifetime."""
    global launcher
    import pytest_metaflow_launcher  # type: ignore[import-not-found]

    launcher = pytest_metaflow_launcher
    launcher._pdeathsig()  # dies with the pytest process that started it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    base_env = {k: v for k, v in os.environ.items() if k != PAD_VAR}
    own = {os.path.abspath(p) for p in base_env.get("PYTHONPATH", "").split(os.pathsep) if p}
    DEFAULT_PATH[:] = [p for p in sys.path[1:] if os.path.abspath(p) not in own]
    control = os.dup(0)
    ready = os.fdopen(os.dup(1), "w")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    os.close(null)
    try:
        import importlib
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # shown by no run: documented
            for name in PREIMPORT:
                importlib.import_module(name)
        problem = _probe()
    except Exception as e:  # noqa: BLE001  # anything: every run execs
        problem = f"import failed: {type(e).__name__}: {e}"
    address = f"pytest-metaflow-server-{os.getpid()}-{os.urandom(6).hex()}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        listener.bind("\0" + address)
        listener.listen(64)
    except OSError as e:
        problem = problem or f"cannot listen: {e}"
    ready.write(f"exec {problem}\n" if problem else f"ready {address}\n")
    ready.flush()
    if problem:
        # Nothing to serve; wait for the end of the session (the shims get "connection refused").
        listener.close()
        while os.read(control, 4096):
            pass
        os._exit(0)
    gc.collect()
    gc.freeze()  # see pytest_metaflow_launcher._serve: tasks and runtimes never walk the server's heap
    request = _serve(listener, control, base_env, ready)
    if request is None:
        os._exit(0)
    if request[0].get("kind") == "import":
        _import_flow(*request)
    _run(*request)


def _serve(
    listener: socket.socket, control: int, base_env: dict[str, str], report: Any
) -> Optional[tuple[dict[str, Any], list[int]]]:
    """The server's loop. Returns ``(request, fds)`` in a forked runtime, ``None`` when done.

    Each runtime forked is reported on ``report`` (the pytest process reads it) as
    ``fork <pid> <start time> <token>``, before the shim hears of it: the plugin tracks
    the runtime's process group under the run's token, as it tracks a fresh runtime's.
    """
    server_pid = os.getpid()

    def on_fork(pid: int, request: dict[str, Any]) -> None:
        if request.get("kind") == "import":  # not a run: nothing for the pytest process to track
            _log(f"import {pid} {request['argv'][1]}")
            return
        _report(report, pid, request["env"].get("PYTEST_METAFLOW_TOKEN", ""))

    # The runtime's group goes with a SIGKILLed shim (the shim's connection becomes readable).
    served: Optional[tuple[dict[str, Any], list[int]]] = launcher.serve_forks(
        listener, control, lambda conn: _accept(conn, base_env), _kill_group, on_fork, (report.fileno(),)
    )
    if served is not None:
        served[0]["server_pid"] = server_pid
    return served


def _report(report: Any, pid: int, token: str) -> None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            start = f.read().rsplit(b")", 1)[1].split()[19].decode()
        if token and " " not in token and "\n" not in token:
            report.write(f"fork {pid} {start} {token}\n")
            report.flush()
    except (OSError, IndexError, ValueError):
        pass  # the pytest process is gone, or the child is: nothing to track


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _accept(conn: socket.socket, base_env: dict[str, str]) -> Optional[tuple[dict[str, Any], list[int]]]:
    """Read a shim's request; ``(request, fds)`` to fork it, ``None`` after answering ``exec``."""
    fds: list[int] = []
    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        peer, uid = array.array("i", creds)[:2]
        msg, ancdata, flags, _ = conn.recvmsg(MAX_REQUEST, socket.CMSG_SPACE(4 * 4))
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(array.array("i", data[: len(data) - len(data) % 4]))
        if uid != os.getuid() or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            raise ValueError("unusable request")
        request = launcher.decode_request(msg)
        importing = request.get("kind") == "import"
        if len(fds) != (4 if importing else 3):
            raise ValueError("unusable request")
        # Process attributes a fresh interpreter inherits from the shim: its umask is
        # applied in the child; resource limits must be the server's.
        request["umask"] = _umask_of(peer)
        forkable = _importable(request, base_env) if importing else _forkable(request, base_env)
        if forkable and _same_limits(peer):
            return request, fds
        conn.send(b"exec")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        try:
            conn.send(b"exec")
        except OSError:
            pass
    for fd in fds:
        os.close(fd)
    return None


def _why(reason: str) -> None:
    """Say why a run is exec'd, on the server's stderr (``PYTEST_METAFLOW_SERVER_LOG`` keeps it)."""
    _log(f"exec: {reason}")


def _log(line: str) -> None:
    try:
        os.write(2, f"pytest-metaflow server: {line}\n".encode())
    except OSError:
        pass


def _umask_of(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _same_limits(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/limits") as f, open("/proc/self/limits") as g:
            same = f.read() == g.read()
    except OSError:
        same = False
    if not same:
        _why("resource limits differ")
    return same


def _metaflow_root() -> str:
    import metaflow

    return os.path.dirname(os.path.dirname(os.path.abspath(metaflow.__file__)))


def _forkable(request: dict[str, Any], base_env: dict[str, str]) -> bool:
    """Whether a forked child can be exactly what ``python <argv>`` would start."""
    argv, env, cwd = request["argv"], request["env"], request["cwd"]
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        _why("if not isinstance(argv, list) or not argv or not all(isinsta")
        return False
    script = argv[0]
    if not script.endswith(".py") or not os.path.isabs(cwd) or not os.path.isdir(cwd):
        _why('if not script.endswith(".py") or not os.path.isabs(cwd) or n')
        return False
    if not os.path.isfile(os.path.join(cwd, script)):
        _why("if not os.path.isfile(os.path.join(cwd, script)):")
        return False
    for key in set(env) | set(base_env):
        if key in PER_RUN_KEYS:
            if (key in env) != (key in base_env):
                _why("if (key in env) != (key in base_env):")
                return False
        elif key in PER_REQUEST_KEYS or key == "PYTHONPATH":
            continue
        elif env.get(key) != base_env.get(key):
            _why(f"environment key {key} differs")
            return False
    pythonpath, base_path = env.get("PYTHONPATH"), base_env.get("PYTHONPATH")
    # The Runner's async methods put metaflow's own root first (already on sys.path here).
    if pythonpath != base_path and pythonpath != os.pathsep.join(p for p in (_metaflow_root(), base_path) if p):
        _why("if pythonpath != base_path and pythonpath != os.pathsep.join")
        return False
    # Configuration files Metaflow reads at import (metaflow_config_funcs): the server read
    # none (its METAFLOW_HOME is a placeholder); a run that has one is exec'd.
    home = env.get("METAFLOW_HOME", "~/.metaflowconfig")
    profile = env.get("METAFLOW_PROFILE")
    config = os.path.expanduser(os.path.join(home, f"config_{profile}.json" if profile else "config.json"))
    if os.path.exists(config):
        _why("if os.path.exists(config):")
        return False
    path = os.path.realpath(cwd)
    while True:
        if os.path.exists(os.path.join(path, ".metaflow", "config.json")):
            _why('if os.path.exists(os.path.join(path, ".metaflow", "config.js')
            return False
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    # The run's environment and command line must fit where the server's were.
    if len(_environ_block(env)) > _region("env")[1] or len(_cmdline_block(argv)) > _region("arg")[1]:
        _why('if len(_environ_block(env)) > _region("env")[1] or len(_cmdl')
        return False
    return True


def _importable(request: dict[str, Any], base_env: dict[str, str]) -> bool:
    """Whether a forked child can import a flow file as the pytest process's fresh ``python -c`` would.

    The request's environment is the pytest process's (with its own ``PYTHONPATH``): it
    may lack the keys the plugin's store adds to a run's (:data:`STORE_KEYS`, the
    per-run keys); every other key must be the server's, or the import runs fresh.
    """
    argv, env, cwd, code = request["argv"], request["env"], request["cwd"], request["code"]
    if not isinstance(argv, list) or len(argv) < 2 or not all(isinstance(a, str) for a in argv):
        _why("import: malformed argv")
        return False
    if not isinstance(code, str) or not isinstance(env, dict) or not os.path.isabs(cwd) or not os.path.isdir(cwd):
        _why("import: malformed request")
        return False
    if not os.path.isfile(argv[1]):
        _why("import: no such flow file")
        return False
    free = PER_RUN_KEYS | PER_REQUEST_KEYS | STORE_KEYS | {"PYTHONPATH"}
    for key in set(env) | set(base_env):
        if key not in free and env.get(key) != base_env.get(key):
            _why(f"import: environment key {key} differs")
            return False
    if len(_environ_block(env)) > _region("env")[1] or len(_cmdline_block(["-c", *argv[1:]])) > _region("arg")[1]:
        _why("import: environment or command line too big")
        return False
    return True


# --- in the forked runtime ------------------------------------------------------------------


def _environ_block(env: dict[str, str]) -> bytes:
    return b"".join(f"{k}={v}".encode("utf-8", "surrogateescape") + b"\0" for k, v in env.items() if k != ADDRESS_VAR)


def _cmdline_block(argv: list[str]) -> bytes:
    return b"".join(a.encode("utf-8", "surrogateescape") + b"\0" for a in [sys.executable, *argv])


def _region(which: str) -> tuple[int, int]:
    """``(start, size)`` of this process's exec-time argv (``arg``) or environment (``env``) strings."""
    with open("/proc/self/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    # Fields 48-51 of stat (arg_start, arg_end, env_start, env_end), from the state (field 3) on.
    first = 45 if which == "arg" else 47
    start, end = int(fields[first]), int(fields[first + 1])
    return start, end - start


def _overwrite(which: str, block: bytes) -> None:
    import ctypes

    start, size = _region(which)
    if start and len(block) <= size:
        ctypes.memmove(start, block + b"\0" * (size - len(block)), size)


def _reconfigure() -> Optional[str]:
    """Re-read Metaflow's configuration from this process's environment and cwd, as at import.

    ``metaflow.metaflow_config`` is executed again in place (its module object stays);
    values that did not change keep their old objects, so every ``from
    metaflow.metaflow_config import X`` made at import still holds the right one. A
    value that changed must be a server placeholder (a per-run key): each copy of it
    (module globals, class attributes, function defaults, attributes of module-level
    objects in metaflow's and its extensions' modules) is replaced by the new value.
    Returns a reason when something else changed (the caller then execs).
    """
    import importlib

    from metaflow import metaflow_config as config
    from metaflow import metaflow_config_funcs as funcs

    old = dict(vars(config))
    funcs.METAFLOW_CONFIG = None
    funcs.METAFLOW_LOCAL_CONFIG = None
    funcs._all_configs.clear()
    importlib.reload(config)
    changed: dict[int, tuple[Any, Any]] = {}
    for name, new in list(vars(config).items()):
        if name not in old or old[name] is new:
            continue
        before = old[name]
        if _holds_placeholder(before):
            changed[id(before)] = (before, new)
            continue
        if isinstance(new, (types.FunctionType, type)):
            setattr(config, name, before)  # re-created by the reload: keep the one others imported
            continue
        try:
            same = type(before) is type(new) and bool(before == new)
        except Exception:  # noqa: BLE001
            same = False
        if not same:
            return f"metaflow_config.{name} changed"
        setattr(config, name, before)
    if changed:
        _rebind(changed)
    return None


def _owned_modules() -> list[types.ModuleType]:
    prefixes = ("metaflow", "metaflow_extensions", "pytest_metaflow")
    return [m for n, m in list(sys.modules.items()) if n.startswith(prefixes) and isinstance(m, types.ModuleType)]


def _rebind(changed: dict[int, tuple[Any, Any]]) -> None:
    def swap(holder: dict[str, Any], setter: Any) -> None:
        for key, value in list(holder.items()):
            hit = changed.get(id(value))
            if hit is not None and hit[0] is value:
                setter(key, hit[1])

    def defaults(func: Any, depth: int = 0) -> None:
        if isinstance(func, (classmethod, staticmethod, property)):
            func = func.fget if isinstance(func, property) else func.__func__
        if not isinstance(func, types.FunctionType):
            return
        # A decorated function: the original is in the wrapper's closure (or __wrapped__).
        if depth < 3:
            inner = [c.cell_contents for c in func.__closure__ or () if _filled(c)]
            for wrapped in [getattr(func, "__wrapped__", None), *inner]:
                if isinstance(wrapped, types.FunctionType):
                    defaults(wrapped, depth + 1)
        if func.__defaults__:
            new = tuple(
                changed[id(v)][1] if id(v) in changed and changed[id(v)][0] is v else v for v in func.__defaults__
            )
            func.__defaults__ = new
        if func.__kwdefaults__:
            swap(func.__kwdefaults__, func.__kwdefaults__.__setitem__)

    for module in _owned_modules():
        namespace = vars(module)
        swap(namespace, namespace.__setitem__)
        for value in list(namespace.values()):
            if isinstance(value, type) and value.__module__ == module.__name__:
                swap(dict(vars(value)), lambda k, v, cls=value: setattr(cls, k, v))
                for member in list(vars(value).values()):
                    defaults(member)
            elif isinstance(value, types.FunctionType):
                defaults(value)
            elif not isinstance(value, types.ModuleType) and isinstance(getattr(value, "__dict__", None), dict):
                instance = vars(value)
                swap(instance, instance.__setitem__)


def _filled(cell: Any) -> bool:
    try:
        _ = cell.cell_contents  # an empty cell (a name not yet bound) raises
    except ValueError:
        return False
    return True


def _leftovers() -> list[str]:
    """Placeholders still held anywhere (the probe: nothing may be left after _reconfigure)."""
    found = []

    def bad(value: Any) -> bool:
        return isinstance(value, str) and PLACEHOLDER in value

    def look(obj: Any, depth: int = 0) -> bool:
        if isinstance(obj, dict):
            values = list(obj.values()) + list(obj.keys())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            values = list(obj)
        else:
            return False
        for v in values:
            if bad(v) or (depth == 0 and isinstance(v, tuple) and look(v, 1)):
                return True
        return False

    gc.collect()  # _rebind's closures (a cycle) hold the table of old and new values
    own = vars(sys.modules[__name__])
    for obj in gc.get_objects():
        if obj is own or obj is sys.modules[__name__]:
            continue
        if obj is os.environ or obj is getattr(os.environ, "_data", None):
            continue
        if isinstance(obj, types.FunctionType):
            if any(bad(v) for v in (obj.__defaults__ or ())) or look(obj.__kwdefaults__ or {}):
                found.append(f"default of {obj.__module__}.{obj.__qualname__}")
        elif look(obj):
            found.append(f"{type(obj).__name__} {str(obj)[:160]}")
        else:
            attrs = getattr(obj, "__dict__", None)
            if isinstance(attrs, dict) and look(attrs):
                found.append(f"attribute of {type(obj).__name__}")
        if len(found) > 5:
            break
    return found


def _probe() -> Optional[str]:
    """Check, in a throwaway fork, that _reconfigure leaves no placeholder anywhere."""
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            for key in PER_RUN_KEYS:
                if key in os.environ:
                    os.environ[key] = _placeholder("/nonexistent/pytest-metaflow-probe", key)
            problem = _reconfigure()
            if problem is None:
                left = _leftovers()
                problem = "placeholders left: " + "; ".join(left) if left else None
            os.write(w, (problem or "").encode()[:4000])
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    answer = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        answer += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        return f"probe failed (status {status})"
    return answer.decode(errors="replace") or None


def _take_over(request: dict[str, Any], fds: list[int]) -> dict[str, str]:
    """The start of becoming the requested process: its session, signals, fds 0-2, environment and cwd.

    Fds past the third (an import check's report pipe) are left open. Returns the environment.
    """
    os.setsid()  # a session and process group of its own: killed as a group, away from the server's
    launcher._pdeathsig()
    if os.getppid() != request["server_pid"]:
        os._exit(70)  # the server died before we could ask to die with it
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for target, fd in zip((0, 1, 2), fds):
        os.dup2(fd, target)
    for fd in set(fds[:3]) - {0, 1, 2}:
        os.close(fd)
    env = {k: v for k, v in request["env"].items() if k != ADDRESS_VAR}
    os.environ.clear()
    os.environ.update(env)
    os.chdir(request["cwd"])
    return env


def _configure(request: dict[str, Any]) -> Optional[str]:
    """The shim's umask, a fresh ``tempfile``, Metaflow's configuration re-read; why not (``None``: done)."""
    if request.get("umask") is None:
        return "umask unknown"  # a fresh interpreter gets the shim's
    os.umask(request["umask"])
    import tempfile

    tempfile.tempdir = None  # computed again from this environment's TMPDIR
    try:
        return _reconfigure()
    except Exception as e:  # noqa: BLE001  # e.g. a malformed value: let a fresh interpreter say so
        return f"{type(e).__name__}: {e}"


def _become(request: dict[str, Any], fds: list[int]) -> None:
    """Turn this forked process into what ``python <argv>`` would have started, up to running the flow."""
    env = _take_over(request, fds)
    argv = list(request["argv"])
    unbuffered = bool(env.get("PYTHONUNBUFFERED"))
    if _configure(request) is not None:
        _exec_real(argv)
    # /proc/PID/environ and cmdline: the run's (the leak guard and the watchdog find the
    # run's token there, as in a fresh runtime).
    _overwrite("env", _environ_block(env))
    _overwrite("arg", _cmdline_block(argv))
    launcher._reset_stdio(unbuffered)
    # sys.path as `python flow.py` builds it: the script's directory first, then
    # PYTHONPATH (the server's, plus metaflow's root for the Runner's async methods).
    script_dir = os.path.dirname(os.path.realpath(os.path.join(request["cwd"], argv[0])))
    rest = sys.path[1:]
    if env.get("PYTHONPATH", "").startswith(_metaflow_root() + os.pathsep) or env.get("PYTHONPATH") == _metaflow_root():
        rest = [_metaflow_root(), *rest]
    sys.path[:] = [script_dir, *rest]
    sys.argv = argv
    try:
        sys.orig_argv = [sys.executable, *argv]
    except Exception:  # noqa: BLE001
        pass
    _replay_extension()


def _exec_real(argv: list[str]) -> None:
    """What the shim does on ``exec``, from here: same argv, env, cwd and fds."""
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, *argv])


def _replay_extension() -> None:
    """Run again what the plugin's extension does at import in a fresh process (it ran in the server)."""
    for name, module in list(sys.modules.items()):
        if name.endswith(".pytest_metaflow_toplevel"):
            for hook in getattr(module, "__process_hooks", ()):
                hook()


def _run(request: dict[str, Any], fds: list[int]) -> None:
    """Become the runtime and run the flow file as ``__main__``; ends the process with its status."""
    _become(request, fds)
    path = os.path.abspath(os.path.join(request["cwd"], request["argv"][0]))
    import builtins
    import importlib.machinery

    main = launcher.fresh_main(
        __file__=path,
        __builtins__=builtins,
        __loader__=importlib.machinery.SourceFileLoader("__main__", path),
        __spec__=None,
        __package__=None,
        __cached__=None,
    )
    with open(path, "rb") as f:
        source = f.read()
    code = compile(source, path, "exec")
    exec(code, main.__dict__)
    raise SystemExit(0)


def _import_flow(request: dict[str, Any], fds: list[int]) -> None:
    """Become the pytest process's fresh ``python -c <code> <flow> <fd> <timeout>`` and run it.

    The code (``pytest_metaflow._flowimport._CHILD``) imports the flow file and reports
    on the fourth fd; it always ends the process. When Metaflow's configuration, re-read
    from the request's environment, changed beyond the server's placeholders, the child
    reports ``fallback`` and the pytest process runs a fresh interpreter instead.
    """
    log = os.dup(2)  # the server's log (PYTEST_METAFLOW_SERVER_LOG): fd 2 becomes the import's stderr
    env = _take_over(request, fds)  # a session of its own, as start_new_session=True
    report = fds[3]

    def fallback(reason: str) -> None:
        try:
            os.write(log, f"pytest-metaflow server: import {os.getpid()} runs fresh: {reason}\n".encode())
            os.write(report, json.dumps({"kind": "fallback", "why": reason}).encode())
        finally:
            os._exit(0)

    problem = _configure(request)
    if problem is not None:
        fallback(problem)  # (fd 2 is the import's stderr now: nothing for the server's log)
    os.close(log)
    argv = ["-c", *request["argv"][1:-2], str(report), request["argv"][-1]]
    _overwrite("env", _environ_block(env))
    _overwrite("arg", _cmdline_block(argv))
    launcher._reset_stdio(bool(env.get("PYTHONUNBUFFERED")))
    # sys.path as `python -c` builds it: '' (the cwd), PYTHONPATH, the interpreter's own
    # part; duplicates dropped, first kept, as site.removeduppaths does.
    path, seen = [""], set()
    for entry in [*env.get("PYTHONPATH", "").split(os.pathsep), *DEFAULT_PATH]:
        if entry and os.path.abspath(entry) not in seen:
            seen.add(os.path.abspath(entry))
            path.append(os.path.abspath(entry))
    sys.path[:] = path
    import importlib

    importlib.invalidate_caches()
    sys.argv = argv
    try:
        sys.orig_argv = [sys.executable, *argv]
    except Exception:  # noqa: BLE001
        pass
    import builtins

    main = launcher.fresh_main(__builtins__=builtins)
    try:
        exec(compile(request["code"], "<string>", "exec"), main.__dict__)
    finally:
        os._exit(70)  # the code reports and exits itself
