"""Importing a flow file in the pytest process, safely.

Metaflow's ``Runner()`` executes the flow file inside the calling process
(``click_api.extract_flow_class_from_file``) to build its command line. Two
things go wrong with that in a test session, and this module fixes both before
Metaflow gets there (it then finds the module in its cache,
``click_api.loaded_modules``):

- Module-level code can end the process (``os._exit(3)``, ``sys.exit()``) or
  fail. Each flow file is first imported once in a child process, keyed by its
  path and content (a hash), so nothing on the second use of a file; any
  exit, crash or exception becomes a :class:`FlowStartError` at the call site.
  The child is forked from the runtime server when the file's runs would use
  one (it has metaflow imported), else it is a fresh interpreter.
- Its imports would leak into the test process: a flow beside ``helpers.py``
  gets the tests' ``helpers`` module (already in ``sys.modules``), and the next
  flow directory with a ``helpers.py`` gets the first one's. The import runs
  with the flow's directory (and package root) first on ``sys.path``, modules of
  the same names hidden, and ``sys.path``/``sys.modules`` restored afterwards,
  so a flow imports what ``python flow.py`` would import.

Loading this module does not import metaflow; :func:`load` does.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

from . import _flowfile
from .errors import FlowStartError, RunTimeoutError

SOURCE_ATTR = "__pytest_metaflow_source__"  # set on Metaflow's cached flow module

# Imported in the child with the flow's name (not "__main__", as Metaflow's
# Runner does); reports how it went as JSON on the file descriptor in argv[2].
_CHILD = r"""
import json, os, sys, traceback
path, fd = sys.argv[1], int(sys.argv[2])
try:  # die with the parent (pytest killed while a flow hangs at import)
    import ctypes
    ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
except Exception:
    pass
def report(**info):
    data = json.dumps(info).encode()
    while data:
        data = data[os.write(fd, data):]
    os.close(fd)
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(0)  # no atexit handlers or threads of the flow module to wait for
try:  # the test process has metaflow imported already: not part of the flow's import time
    import metaflow
except Exception:
    pass
if sys.argv[3]:
    import signal
    signal.signal(signal.SIGALRM, lambda *a: report(kind="timeout"))
    signal.setitimer(signal.ITIMER_REAL, float(sys.argv[3]))
try:
    import importlib.util
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
except SystemExit as e:
    report(kind="exit", code=repr(e.code))
except BaseException as e:
    frames = traceback.extract_tb(e.__traceback__)
    own = [f for f in frames if f.filename == path] or [f for f in frames if not f.filename.startswith("<")] or frames
    where = own[-1] if own else None
    report(kind="exception", type=type(e).__name__, message=str(e),
           file=where.filename if where else None, line=where.lineno if where else None,
           code=(where.line or "") if where else "",
           traceback="".join(traceback.format_exception(type(e), e, e.__traceback__))[-20000:])
report(kind="ok")
"""

_STARTUP_GRACE = 300.0  # seconds for the child's interpreter and metaflow to start, beyond the run timeout
_lock = threading.Lock()
_validated: set[tuple[str, str]] = set()  # (path, content hash) imported cleanly in a child
_PROTECTED = {"metaflow", "pytest", "_pytest", "pluggy", "pytest_metaflow"}


def _hide_candidates(dirs: Sequence[str]) -> set[str]:
    """Top-level module names that ``dirs`` provide (``name.py`` or a package ``name/``)."""
    names: set[str] = set()
    for directory in dirs:
        try:
            entries = os.listdir(directory)
        except OSError:
            continue
        for entry in entries:
            stem, ext = os.path.splitext(entry)
            if ext == ".py" and stem.isidentifier():
                names.add(stem)
            elif entry.isidentifier() and os.path.isfile(os.path.join(directory, entry, "__init__.py")):
                names.add(entry)
    stdlib = getattr(sys, "stdlib_module_names", frozenset(sys.builtin_module_names))
    return names - set(stdlib) - _PROTECTED


def _inside_dir(path: str, directory: str) -> bool:
    return os.path.abspath(path).startswith(os.path.abspath(directory).rstrip(os.sep) + os.sep)


def _inside(module: ModuleType | None, dirs: Sequence[str]) -> bool:
    location = getattr(module, "__file__", None)
    return isinstance(location, str) and any(_inside_dir(location, d) for d in dirs)


def child_pythonpath(flow_file: str, env: dict[str, str]) -> dict[str, str]:
    """``PYTHONPATH`` for the run's processes when the flow lives in a package, else nothing.

    ``python flow.py`` puts the flow's directory on ``sys.path``; a flow inside a
    package also needs the package root to import ``mypkg.helpers``.
    """
    root = _flowfile.package_root(flow_file)
    if root is None:
        return {}
    current = env.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    parts = [p for p in current.split(os.pathsep) if p]
    return {"PYTHONPATH": os.pathsep.join([root, *(p for p in parts if p != root)])}


@contextlib.contextmanager
def isolated_imports(flow_file: str) -> Iterator[None]:
    """Import as ``python flow.py`` would, and leave ``sys.path``/``sys.modules`` as they were.

    During the block the flow's directory (and package root) come first on
    ``sys.path`` and modules of the names they provide are hidden unless they
    were loaded from there; afterwards, modules loaded from there are dropped,
    the hidden ones put back, and ``sys.path`` restored. Third-party modules the
    flow imported stay loaded (re-importing an extension module is not safe).
    """
    dirs = _flowfile.import_dirs(flow_file)
    names = _hide_candidates(dirs)

    def local(key: str) -> bool:
        return key.split(".")[0] in names

    saved_path = list(sys.path)
    before = set(sys.modules)
    hidden = {k: sys.modules.pop(k) for k in list(sys.modules) if local(k) and not _inside(sys.modules.get(k), dirs)}
    sys.path[:] = [*dirs, *(p for p in saved_path if p not in dirs)]
    importlib.invalidate_caches()  # a helpers.py written a moment ago must be seen
    try:
        yield
    finally:
        for key in set(sys.modules) - before:
            if local(key) or _inside(sys.modules.get(key), dirs):
                sys.modules.pop(key, None)
        sys.modules.update(hidden)
        sys.path[:] = saved_path


def _content_key(flow_file: str, source: str) -> tuple[str, str]:
    return flow_file, hashlib.sha256(source.encode("utf-8")).hexdigest()


def _import_error(flow_file: str, info: dict[str, Any], stdout: str = "", stderr: str = "") -> FlowStartError:
    if info.get("kind") == "exit":
        head = (
            f"the flow file {flow_file} called sys.exit({info['code'] if info['code'] != 'None' else ''}) "
            "while being imported; module-level code must not exit"
        )
        return FlowStartError(head, stdout=stdout, stderr=stderr)
    where = ""
    if info.get("file"):
        where = f"\n    at {info['file']}, line {info['line']}" + (f": {info['code']}" if info.get("code") else "")
    head = f"importing the flow file {flow_file} failed: {info['type']}: {info['message']}{where}"
    return FlowStartError(head, stdout=stdout, stderr=stderr or info.get("traceback", ""))


def _child_env(dirs: Sequence[str]) -> dict[str, str]:
    # The test process's sys.path (pytest's rootdir/pythonpath entries included),
    # after the flow's own directories: the import sees what the in-process one sees.
    paths = [*dirs, *(os.path.abspath(p) for p in sys.path if p and os.path.isdir(p) and p not in dirs)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.kill()
    proc.wait()


# Flow-file imports served by the runtime server, this process (tests of the plugin read it).
served_imports = 0


class _TooSlow(Exception):
    """The import check outlived the run timeout (its child was killed)."""


def _fresh(flow_file: str, env: dict[str, str], timeout: float | None) -> tuple[int, bytes, bytes, bytes]:
    """Run :data:`_CHILD` in a fresh interpreter: ``(returncode, stdout, stderr, report)``; :class:`_TooSlow`."""
    read_fd, write_fd = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, flow_file, str(write_fd), str(timeout or "")],
            pass_fds=(write_fd,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # killed as a group; never gets pytest's Ctrl-C
        )
    finally:
        os.close(write_fd)
    try:
        try:
            # The child times the flow's import itself (after its interpreter and
            # metaflow started, slow on a loaded machine); this is the backstop.
            stdout_b, stderr_b = proc.communicate(timeout=timeout + _STARTUP_GRACE if timeout else None)
        except subprocess.TimeoutExpired:
            raise _TooSlow from None
        with os.fdopen(read_fd, "rb") as pipe:
            read_fd = -1
            report = pipe.read()
    finally:
        if read_fd >= 0:
            os.close(read_fd)
        if proc.returncode is None:  # timed out, Ctrl-C, pytest-timeout
            _kill(proc)
    return proc.returncode, stdout_b, stderr_b, report


def _served(
    flow_file: str, env: dict[str, str], timeout: float | None, run_env: dict[str, str]
) -> tuple[int, bytes, bytes, bytes] | None:
    """:data:`_CHILD` forked from the runtime server (``_runtime_server.import_in_server``).

    Same result as :func:`_fresh` (:class:`_TooSlow` too), or ``None`` when the server
    cannot vouch for this import (no server for ``run_env``, it declined, or Metaflow's
    configuration read from ``env`` differs from what it imported with).
    """
    global served_imports
    from . import _runtime_server

    deadline = timeout + _STARTUP_GRACE if timeout else None
    try:
        outcome = _runtime_server.import_in_server(run_env, _CHILD, [flow_file, "0", str(timeout or "")], env, deadline)
    except _runtime_server.ImportTimeout:
        raise _TooSlow from None
    if outcome is None:
        return None
    try:
        fallback = json.loads(outcome[3]).get("kind") == "fallback"
    except (ValueError, AttributeError):
        fallback = False
    if fallback:
        return None
    with _lock:
        served_imports += 1
    return outcome


def validate(
    flow_file: str, source: str, *, timeout: float | None = None, run_env: dict[str, str] | None = None
) -> None:
    """Import ``flow_file`` once in a child process; raise :class:`FlowStartError` if it fails or exits.

    Cached by path and content: the second call for an unchanged file costs a
    hash. ``timeout`` bounds the import (:class:`RunTimeoutError` after it).
    ``run_env``: the environment of the runs the file is for; when a fork-mode run
    with it would use the runtime server, the child is forked from that server (it
    has metaflow imported) instead of started fresh, with the same environment,
    ``sys.path``, cwd and outcomes (docs/performance.md, "Runtime server").
    """
    key = _content_key(flow_file, source)
    with _lock:
        if key in _validated:
            return
    too_slow = RunTimeoutError(
        f"importing the flow file {flow_file} took more than the run timeout of {timeout or 0:g} s "
        "(Metaflow imports it in the pytest process to build its command line); "
        "does it do slow work at module level?"
    )
    env = _child_env(_flowfile.import_dirs(flow_file))
    try:
        outcome = _served(flow_file, env, timeout, run_env) if run_env is not None else None
        code, stdout_b, stderr_b, report = outcome or _fresh(flow_file, env, timeout)
    except _TooSlow:
        raise too_slow from None
    stdout = stdout_b.decode("utf-8", "replace")
    stderr = stderr_b.decode("utf-8", "replace")
    try:
        info = json.loads(report) if report else {}
    except ValueError:
        info = {}
    if info.get("kind") == "ok":
        with _lock:
            _validated.add(key)
        return
    if info.get("kind") == "timeout":
        raise too_slow
    if info:
        raise _import_error(flow_file, info, stdout, stderr)
    how = (
        f"was killed by signal {signal.Signals(-code).name}"
        if code < 0 and -code in signal.Signals._value2member_map_
        else f"ended the process with exit code {code} (os._exit() or a crash)"
    )
    tail = "\n".join(line for line in (stderr.strip() or stdout.strip()).splitlines()[-5:])
    raise FlowStartError(
        f"the flow file {flow_file} {how} while being imported; module-level code must not end the process"
        + (f"\n{tail}" if tail else ""),
        stdout=stdout,
        stderr=stderr,
    )


def _exec_in_process(flow_file: str) -> ModuleType:
    name = os.path.splitext(os.path.basename(flow_file))[0]
    spec = importlib.util.spec_from_file_location(name, flow_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with isolated_imports(flow_file):
        try:
            spec.loader.exec_module(module)
        except SystemExit as e:
            raise _import_error(flow_file, {"kind": "exit", "code": repr(e.code)}) from None
        except Exception as e:
            import traceback

            frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == flow_file]
            where = frames[-1] if frames else None
            info = {
                "type": type(e).__name__,
                "message": str(e),
                "file": where.filename if where else None,
                "line": where.lineno if where else None,
                "code": (where.line or "") if where else "",
            }
            raise _import_error(flow_file, info) from e
    return module


def _cached_source(flow_file: str) -> tuple[str, bool]:
    """``(source, whether Metaflow's cache holds the module of exactly this source)``."""
    from metaflow.runner import click_api

    source = _flowfile.read_source(flow_file)
    cached = click_api.loaded_modules.get(flow_file)
    return source, getattr(cached, SOURCE_ATTR, None) == source


def check_in_child(
    flow_file: str,
    *,
    trusted_dir: str | None = None,
    timeout: float | None = None,
    run_env: dict[str, str] | None = None,
) -> None:
    """Make sure ``flow_file`` is a runnable flow whose import neither fails nor exits (see :func:`validate`).

    Files under ``trusted_dir`` are written by the plugin (``nbrunner``) and
    import modules pytest already imported: no child for them. Raises
    :class:`InvalidFlowError` or :class:`FlowStartError`. ``run_env``: see :func:`validate`.
    """
    flow_file = os.path.abspath(flow_file)
    source, cached = _cached_source(flow_file)
    if cached:
        return
    _flowfile.check_source(source, flow_file)
    if not (trusted_dir and _inside_dir(flow_file, trusted_dir)):
        validate(flow_file, source, timeout=timeout, run_env=run_env)


def load(flow_file: str) -> None:
    """Put ``flow_file``'s module in Metaflow's cache, imported in isolation (see the module docstring).

    An unchanged file whose module is cached is not imported again; a changed
    one is (Metaflow would otherwise run the stale module). Call
    :func:`check_in_child` first.
    """
    from metaflow.runner import click_api

    flow_file = os.path.abspath(flow_file)
    source, cached = _cached_source(flow_file)
    if cached:
        return
    _flowfile.check_source(source, flow_file)
    click_api.loaded_modules.pop(flow_file, None)
    module = _exec_in_process(flow_file)
    setattr(module, SOURCE_ATTR, source)
    click_api.loaded_modules[flow_file] = module


def forget() -> list[str]:
    """Drop the validation cache (tests of the plugin); return what was cached."""
    with _lock:
        paths = sorted({p for p, _ in _validated})
        _validated.clear()
    return paths
