"""The Runner the fixtures hand out: a ``metaflow.Runner`` configured for tests.

This is the only module that imports metaflow at import time; the fixtures
import it on first use, so loading the plugin costs nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

from . import _store

_store.import_metaflow()  # before any other metaflow import: its import-time warnings are not the test's

import metaflow  # noqa: E402
from metaflow.exception import MetaflowException  # noqa: E402
from metaflow.runner import click_api  # noqa: E402

from . import (  # noqa: E402
    _flowconfig,
    _flowimport,
    _processes,
    _remote,  # noqa: E402
    _spin,
    reporting,
)
from .errors import FlowStartError, InvalidFlowError, RunTimeoutError  # noqa: E402


@contextlib.contextmanager
def _keep_sigint() -> Iterator[None]:
    """Undo the SIGINT handler every ``SubprocessManager()`` installs (it swallows Ctrl-C)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = signal.getsignal(signal.SIGINT)
    loop = None
    try:
        import asyncio

        loop = asyncio.get_running_loop()
    except RuntimeError:
        pass
    had_loop_handler = loop is not None and signal.SIGINT in getattr(loop, "_signal_handlers", {})
    try:
        yield
    finally:
        if loop is not None and not had_loop_handler:
            loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, handler)


@contextlib.contextmanager
def _keep_cwd() -> Iterator[None]:
    # Metaflow's with_dir() chdirs without try/finally; a parameter error leaves
    # the caller in the runner's cwd.
    cwd = os.getcwd()
    try:
        yield
    finally:
        if os.getcwd() != cwd:
            os.chdir(cwd)


def _start_error(flow_file: str, error: RuntimeError, command_obj: Any = None, waited: float = 0) -> FlowStartError:
    cause = error.__cause__
    command = " ".join(getattr(cause, "cmd", None) or getattr(command_obj, "command", None) or [])
    stdout = stderr = ""
    if command_obj is not None and getattr(command_obj, "log_files", None):
        # Metaflow builds its message as soon as the child exits, possibly before
        # its pipe readers wrote the last lines to the log files: wait for them.
        for thread in (getattr(command_obj, "stdout_thread", None), getattr(command_obj, "stderr_thread", None)):
            if thread is not None:
                thread.join(timeout=10)
        stdout, stderr = _read(command_obj.log_files.get("stdout")), _read(command_obj.log_files.get("stderr"))
    if not (stdout or stderr):
        text = str(error)
        if "\nStderr:\n" in text:
            text, stderr = text.split("\nStderr:\n", 1)
        if "\nStdout:\n" in text:
            stdout = text.split("\nStdout:\n", 1)[1]
    timed_out = waited if isinstance(cause, TimeoutError) else None
    message = reporting.start_failure(flow_file, command.split(), stdout, stderr, timed_out)
    return FlowStartError(message, command=command, stdout=stdout, stderr=stderr)


@contextlib.contextmanager
def _import_alarm(seconds: float | None, flow_file: str) -> Iterator[None]:
    """Bound the import of the flow file in this process (``Runner()`` executes it here).

    Uses SIGALRM, so only in the main thread; an alarm already armed (pytest-timeout's
    ``signal`` method) is honoured and re-armed with the time it has left.
    """
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        yield
        return
    start = time.monotonic()
    old_delay, old_interval = signal.getitimer(signal.ITIMER_REAL)
    old_handler = signal.getsignal(signal.SIGALRM)

    def on_alarm(signum: int, frame: Any) -> None:
        if old_delay and time.monotonic() - start >= old_delay - 1e-3 and callable(old_handler):
            old_handler(signum, frame)  # theirs was due first
            return
        raise RunTimeoutError(
            f"importing the flow file {flow_file} took more than the run timeout of {seconds:g} s "
            "(Metaflow imports it in the pytest process to build its command line); "
            "does it do slow work at module level?"
        )

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, min(seconds, old_delay) if old_delay else seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay:
            left = old_delay - (time.monotonic() - start)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3), old_interval)


# "<date> <time> [<run>/<step>/<task> (pid N)] <message>" in the runtime's output.
_TASK_LINE = re.compile(r"\[(?P<pathspec>[^\s\]/]+/[^\s\]/]+/[^\s\]/]+) \(pid \d+\)\] ?(?P<text>.*)$")
_TASK_ENDED = ("Task finished successfully.", "Task failed.")


def _running_tasks(output: str) -> list[tuple[str, list[str]]]:
    """Tasks that started and never ended in the runtime's output, with their lines."""
    lines: dict[str, list[str]] = {}
    ended = set()
    for line in output.splitlines():
        m = _TASK_LINE.search(line)
        if m:
            lines.setdefault(m["pathspec"], []).append(m["text"])
            if m["text"].strip().startswith(_TASK_ENDED):
                ended.add(m["pathspec"])
    return [(p, text) for p, text in lines.items() if p not in ended]


def _read(path: str | None) -> str:
    try:
        with open(path or "", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


class _Call:
    """One run/resume/spin started by a runner: its token, its command, its deadline."""

    def __init__(self, runner: FixtureRunner, token: str, seconds: float | None) -> None:
        self.runner = runner
        self.token = token
        self.seconds = seconds
        self.timed_out = False
        self.reported = False
        self._timer: threading.Timer | None = None
        if seconds:
            self._timer = threading.Timer(seconds, self._expire)
            self._timer.daemon = True
            self._timer.start()

    def command(self) -> Any:
        for command in list(self.runner.spm.commands.values()):
            if command.env.get(_processes.TOKEN_VAR) == self.token:
                return command
        return None

    def kill(self, termination_timeout: float = 0) -> None:
        """Kill this call's whole tree (replaces Metaflow's ``pkill -P`` based kill)."""
        with _remote.jobs_stopped(self.runner, self.token):  # then its @kubernetes/@batch jobs
            _processes.kill_processes([self.token])

    def _expire(self) -> None:
        if not _processes.find_processes([self.token]):
            return
        self.timed_out = True
        command = self.command()
        if command is not None:
            command.timeout = True  # ExecutingProcess.status then reads "timeout"
        self.kill()

    def settle(self) -> None:
        """Stop the deadline; wait for a kill in progress."""
        if self._timer is not None:
            self._timer.cancel()
            if self._timer.is_alive() and self._timer is not threading.current_thread():
                self._timer.join()

    def error(self, result: Any = None) -> RunTimeoutError:
        self.reported = True
        command = self.command()
        stdout = _read(command.log_files.get("stdout")) if command is not None else ""
        stderr = _read(command.log_files.get("stderr")) if command is not None else ""
        obj = getattr(result, "run", None) or getattr(result, "task", None)
        what = f"{reporting.kind(obj)} {obj.pathspec}" if obj is not None else f"the run of {self.runner.flow_file}"
        parts = [
            f"{what} timed out after {self.seconds:g} s (the metaflow run timeout: "
            "@pytest.mark.metaflow(timeout=...) or --metaflow-timeout); its processes were killed"
        ]
        running = _running_tasks(stdout + "\n" + stderr)
        flow = obj.pathspec.split("/")[0] + "/" if obj is not None else ""
        for pathspec, text in running:
            step = pathspec.split("/")[1]
            text = [line for line in text if line.strip() != "Task is starting."]
            parts.append(f"step '{step}' was running (task {flow}{pathspec}); its output:")
            parts.append(reporting.indent(reporting.tail("\n".join(text), 10)))
        output = (stderr.strip() + "\n" + stdout.strip()).strip()
        if not running and output:
            parts.append("no step was running; output of the Metaflow process:")
            parts.append(reporting.indent(reporting.tail(output, 10)))
        elif not running:
            parts.append(reporting.nothing_written(self.seconds))
        return RunTimeoutError("\n".join(parts), result)


_NOT_PERSISTED = (
    "spin() was called without persist=True, so the spun task {pathspec} keeps no artifacts; "
    "pass persist=True to read {what}"
)


class _NoArtifacts:
    """``task.data`` of a task spun without ``persist=True``: says how to get artifacts."""

    def __init__(self, task: Any, data: Any) -> None:
        self._task = task
        self._data = data

    def __getattr__(self, name: str) -> Any:
        try:
            return getattr(self._data, name)
        except AttributeError:
            raise AttributeError(_NOT_PERSISTED.format(pathspec=self._task.pathspec, what=f"'{name}'")) from None


class _UnpersistedTask(metaflow.Task):  # type: ignore[misc]
    """A ``metaflow.Task`` spun without ``persist=True``: reading an artifact says to pass it."""

    def __getitem__(self, name: str) -> Any:
        try:
            return super().__getitem__(name)
        except KeyError:
            raise KeyError(_NOT_PERSISTED.format(pathspec=self.pathspec, what=f"artifact '{name}'")) from None

    @property
    def data(self) -> Any:
        return _NoArtifacts(self, super().data)


def _spin_result(result: Any, kwargs: dict[str, Any]) -> Any:
    task = getattr(result, "task", None)
    if not kwargs.get("persist") and type(task) is metaflow.Task:
        task.__class__ = _UnpersistedTask
        task.spun_without_persist = True  # for helpers that list artifacts
    return result


class FixtureRunner(metaflow.Runner):
    """A ``metaflow.Runner`` bound to a hermetic store.

    It behaves like Metaflow's Runner, with these differences: runs write to the
    store and the client reads them from there; the child gets a user name when
    the environment has none; bad flow files fail at construction with a clear
    message instead of hanging; ``stdout``/``stderr`` of a run stay readable after
    ``cleanup()``; Ctrl-C keeps reaching pytest; each run is bounded by
    ``run_timeout`` seconds (``None``: no bound) and then killed, whole tree.
    """

    def __init__(
        self,
        flow_file: str,
        *,
        store: _store.Store,
        on_result: Callable[[Any], None] = lambda result: None,
        show_output: bool = False,
        profile: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        file_read_timeout: int = 3600,
        run_timeout: float | None = None,
        watchdog: _processes.Watchdog | None = None,
        remote: str = "local",
        **kwargs: Any,
    ) -> None:
        cwd = _flowconfig.resolve_cwd(cwd, flow_file)
        _flowconfig.normalize(kwargs)
        self._store = store
        self._on_result = on_result
        self._spin_modules: list[Path] = []
        self.run_timeout = run_timeout
        self._watchdog = watchdog
        self._calls: list[_Call] = []
        self.token = _processes.new_token()
        store_env = store.env(profile=profile, remote=remote)
        full_env = {**store_env, **(env or {}), _processes.TOKEN_VAR: self.token}
        if env and "PYTHONPATH" in env and "PYTHONPATH" in store_env:
            full_env["PYTHONPATH"] = _store.extension_pythonpath(env["PYTHONPATH"])  # the user's, plus the extension
        full_env.update(_flowimport.child_pythonpath(flow_file, full_env))
        # Imported here first: checked in a child (timed there), isolated from the test's modules, cached.
        _flowimport.check_in_child(flow_file, trusted_dir=str(store.tmp), timeout=run_timeout)
        with _keep_sigint(), _keep_cwd(), _import_alarm(run_timeout, flow_file):
            _flowimport.load(flow_file)
            try:
                super().__init__(
                    flow_file,
                    show_output=show_output,
                    profile=profile,
                    env=full_env,
                    cwd=cwd,
                    file_read_timeout=file_read_timeout,
                    **kwargs,
                )
            except MetaflowException as e:
                raise InvalidFlowError(f"{flow_file}: {e.message if hasattr(e, 'message') else e}") from None
        _flowconfig.check_configs(
            click_api.extract_flow_class_from_file(self.flow_file), kwargs, self.cwd, self.flow_file
        )
        # Each run's root in a process group of its own, tracked by group, descent and token.
        _processes.supervise(self.spm, watchdog)

    # -- every way of starting a process goes through _call / _acall ----------

    def _new_call(self) -> _Call:
        if not self._calls and self._watchdog is not None:
            self._watchdog.add_token(self.token)
        # Each call gets its own token (extending the runner's) and so its own env
        # dict: Metaflow's CommandManager keeps a reference to the one it was given.
        token = f"{self.token}/{len(self._calls) + 1}"
        self.env_vars = {**self.env_vars, _processes.TOKEN_VAR: token}
        call = _Call(self, token, self.run_timeout)
        self._calls.append(call)
        return call

    @contextlib.contextmanager
    def _calling(self, call: _Call) -> Iterator[None]:
        # Metaflow leaves its log files open in the parent (the async child's
        # handles, the reads that build its error message); that ResourceWarning
        # is not the test's business.
        warnings.filterwarnings("ignore", r"unclosed file .*std(out|err)\.log", ResourceWarning)
        with _store.tempdir(self._store.tmp), _keep_cwd():
            try:
                yield
            except RuntimeError as e:
                call.settle()
                if not isinstance(e.__cause__, (subprocess.CalledProcessError, TimeoutError)):
                    raise
                call.kill()  # after file_read_timeout Metaflow leaves the child running
                if call.timed_out:
                    raise call.error() from None
                error = _start_error(self.flow_file, e, call.command(), self.file_read_timeout)
                raise _flowconfig.with_path_hint(error, self.cwd, self.flow_file) from None
            except (ValueError, TypeError) as e:
                call.settle()
                if type(e) not in (ValueError, TypeError) or call.command() is not None:
                    raise
                # Metaflow checks arguments before starting anything, deep in click_api.
                raise type(e)(f"{self.flow_file}: {e}") from None
            except BaseException:  # Ctrl-C, pytest-timeout: the deadline is moot
                call.settle()
                raise

    def _finish(self, result: Any) -> Any:
        _store.bind(result)
        self._store.claim(result)
        self._on_result(result)
        return result

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        call = self._new_call()
        with self._calling(call):
            result = method(*args, **kwargs)
        call.settle()
        self._finish(result)
        if call.timed_out:
            raise call.error(result)
        return result

    async def _acall(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        call = self._new_call()
        with self._calling(call):
            result = await method(*args, **kwargs)
        # Metaflow's wait(timeout=...) kills with pkill -P (direct children, procps
        # needed); kill the whole tree instead.
        result.command_obj.kill = call.kill
        metaflow_wait = result.wait

        async def wait(timeout: float | None = None, stream: str | None = None) -> Any:
            await metaflow_wait(timeout, stream)
            if call.timed_out and not call.reported:
                call.settle()
                raise call.error(result)
            return result

        wait.__doc__ = metaflow_wait.__doc__
        result.wait = wait
        return self._finish(result)

    def run(self, **kwargs: Any) -> Any:
        return self._call(super().run, **kwargs)

    def resume(self, **kwargs: Any) -> Any:
        self._origin_run_here(kwargs)
        with _flowconfig.for_resume(self):  # a resumed run takes the origin run's configs
            return self._call(super().resume, **kwargs)

    def spin(self, pathspec: str, *, artifacts: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """Re-run one step of an earlier run (Metaflow's ``spin``), with inputs given as plain values.

        Parameters
        ----------
        pathspec : str
            The step or task to spin, as Metaflow's ``spin`` takes it.
        artifacts : Dict[str, Any], optional
            Artifact name to value, overriding what the step reads from the
            original run (for a join step: input pathspec ``run_id/step/task_id``
            to such a dict). Written into a temporary artifacts module that is
            passed as ``artifacts_module=`` and removed afterwards; values that
            are not small literals are pickled into a side file. A name the
            step never reads (no ``self.<name>`` in it or the flow's helper
            methods) gets a :class:`~pytest_metaflow.errors.PytestMetaflowWarning`.
        **kwargs : Any
            Passed to Metaflow's ``spin`` unchanged. Note ``persist=False`` is
            Metaflow's default: pass ``persist=True`` to read the spun task's
            artifacts (reading one otherwise raises an error saying so).
        """
        files = self._artifacts_module(pathspec, artifacts, kwargs)
        try:
            with self._original_run_store(pathspec):
                result = self._call(super().spin, pathspec, **kwargs)
        finally:
            for path in files:
                path.unlink(missing_ok=True)
        return _spin_result(result, kwargs)

    async def async_run(self, **kwargs: Any) -> Any:
        return await self._acall(super().async_run, **kwargs)

    async def async_resume(self, **kwargs: Any) -> Any:
        self._origin_run_here(kwargs)
        with _flowconfig.for_resume(self):
            return await self._acall(super().async_resume, **kwargs)

    def _origin_run_here(self, kwargs: dict[str, Any]) -> None:
        """Resume reads the origin run from its own store: bring one made elsewhere into it."""
        origin = kwargs.get("origin_run_id")
        if origin is not None and not self._store.use_config:
            _store.import_run(str(origin), self._store)

    async def async_spin(self, pathspec: str, *, artifacts: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """Like ``spin``, returning as soon as the task started; the artifacts module lives until ``cleanup()``."""
        files = self._artifacts_module(pathspec, artifacts, kwargs)
        self._spin_modules.extend(files)  # the spin process reads them after we return
        with self._original_run_store(pathspec):
            result = await self._acall(super().async_spin, pathspec, **kwargs)
        return _spin_result(result, kwargs)

    @contextlib.contextmanager
    def _original_run_store(self, pathspec: str) -> Iterator[None]:
        """Let the spin process read the original run where it lives.

        The spin child looks the run up in its own local datastore; a run made by
        another fixture (``runner_factory``'s session store, say) lives elsewhere.
        The spun task still goes to this runner's store (``..._SYSROOT_SPIN``).
        """
        root = _store.root_holding_run(pathspec)
        var = "METAFLOW_DATASTORE_SYSROOT_LOCAL"
        own = self.env_vars.get(var)
        if root is None or own is None or root == own:
            yield
            return
        self.env_vars = {**self.env_vars, var: root}
        try:
            yield
        finally:
            self.env_vars = {**self.env_vars, var: own}

    def _artifacts_module(self, pathspec: str, artifacts: dict[str, Any] | None, kwargs: dict[str, Any]) -> list[Path]:
        if artifacts is None:
            return []
        if kwargs.get("artifacts_module") is not None:
            raise TypeError("spin() takes artifacts= or artifacts_module=, not both")
        # stacklevel: warn_unused < _artifacts_module < (async_)spin < the test
        _spin.warn_unused(self._flow_class(), pathspec, artifacts, stacklevel=4)
        module, files = _spin.write_artifacts_module(artifacts, self._store.tmp, self.token)
        kwargs["artifacts_module"] = str(module)
        return files

    def _flow_class(self) -> type | None:
        """The flow class Metaflow loaded from the flow file (``None`` if not exactly one)."""
        module = click_api.loaded_modules.get(self.flow_file)
        found = (
            [
                v
                for v in vars(module).values()
                if isinstance(v, type) and issubclass(v, metaflow.FlowSpec) and v.__module__ == module.__name__
            ]
            if module is not None
            else []
        )
        return found[0] if len(found) == 1 else None

    # -- teardown ---------------------------------------------------------------

    def kill(self) -> list[int]:
        """Kill every process this runner started (the whole tree); return their pids."""
        for call in self._calls:
            call.settle()
        with _remote.jobs_stopped(self, self.token):  # then its @kubernetes/@batch jobs
            killed = _processes.kill_processes([self.token])
        if self._watchdog is not None:
            self._watchdog.discard_token(self.token)
        return killed

    def _keep_logs(self) -> None:
        # Metaflow deletes the log files on cleanup; move them into the store
        # (same filesystem, so a still-running child keeps writing to them).
        for pid, command in self.spm.commands.items():
            moved = {}
            for stream, path in command.log_files.items():
                if not path.startswith(str(self._store.logs)) and os.path.exists(path):
                    target = self._store.logs / f"{self.token}-{pid}-{stream}.log"
                    shutil.move(path, target)
                    moved[stream] = str(target)
            command.log_files.update(moved)

    def cleanup(self) -> None:
        """Delete temporary files; logs stay readable through ``stdout``/``stderr``."""
        self._keep_logs()
        super().cleanup()
        while self._spin_modules:
            self._spin_modules.pop().unlink(missing_ok=True)

    def __exit__(self, *exc: Any) -> None:
        self.cleanup()

    async def __aexit__(self, *exc: Any) -> None:
        self.cleanup()
