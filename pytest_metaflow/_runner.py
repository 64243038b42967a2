"""The Runner the fixtures hand out: a ``metaflow.Runner`` configured for tests.

This is the only module that imports metaflow at import time; the fixtures
import it on first use, so loading the plugin costs nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import warnings
from typing import Any, Callable, Dict, Iterator, List, Optional

import metaflow
from metaflow.exception import MetaflowException
from metaflow.runner import click_api

from . import _flowfile, _processes, _store
from .errors import FlowStartError, InvalidFlowError

_TRACEBACK = "Traceback (most recent call last):"
_SOURCE_ATTR = "__pytest_metaflow_source__"  # set on Metaflow's cached flow module


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


def _reason(stderr: str, stdout: str) -> str:
    """The lines of a dead child's output that say why it died."""
    text = stderr if stderr.strip() else stdout
    lines = [l for l in text.splitlines() if l.strip()]
    if _TRACEBACK in text:
        tb = text[text.rindex(_TRACEBACK):].splitlines()
        where = [l.strip() for l in tb if l.strip().startswith('File "')]
        last = [l for l in tb if l.strip()][-1]
        return "\n".join(["    " + last.strip()] + (["    at " + where[-1]] if where else []))
    skip = ("Metaflow ", "Validating your flow", "The graph looks good", "Running pylint", "Pylint is happy")
    lines = [l for l in lines if not l.strip().startswith(skip)]
    return "\n".join(lines[-12:])


def _start_error(flow_file: str, error: RuntimeError) -> FlowStartError:
    cause = error.__cause__
    command = " ".join(getattr(cause, "cmd", []) or [])
    text = str(error)
    stdout = stderr = ""
    if "\nStderr:\n" in text:
        text, stderr = text.split("\nStderr:\n", 1)
    if "\nStdout:\n" in text:
        stdout = text.split("\nStdout:\n", 1)[1]
    if isinstance(cause, TimeoutError):
        head = f"Metaflow did not start the run of {flow_file} within file_read_timeout"
    else:
        head = f"Metaflow could not start the run of {flow_file}:"
    message = "\n".join(
        [head, _reason(stderr, stdout), "(full logs: the exception's .stdout and .stderr; command: %s)" % command]
    )
    return FlowStartError(message, command=command, stdout=stdout, stderr=stderr)


class FixtureRunner(metaflow.Runner):
    """A ``metaflow.Runner`` bound to a hermetic store.

    It behaves like Metaflow's Runner, with these differences: runs write to the
    store and the client reads them from there; the child gets a user name when
    the environment has none; bad flow files fail at construction with a clear
    message instead of hanging; ``stdout``/``stderr`` of a run stay readable after
    ``cleanup()``; Ctrl-C keeps reaching pytest.
    """

    def __init__(
        self,
        flow_file: str,
        *,
        store: _store.Store,
        on_result: Callable[[Any], None] = lambda result: None,
        show_output: bool = False,
        profile: Optional[str] = None,
        env: Optional[Dict[str, str]] = None,
        cwd: Optional[str] = None,
        file_read_timeout: int = 3600,
        **kwargs: Any,
    ) -> None:
        with open(flow_file, encoding="utf-8") as f:
            source = f.read()
        cached = click_api.loaded_modules.get(flow_file)
        if getattr(cached, _SOURCE_ATTR, None) != source:
            _flowfile.check(flow_file)
            # Metaflow caches flow modules by path: a rewritten file would run stale code.
            # An unchanged one is reused, as a plain Runner does (saves re-executing it).
            click_api.loaded_modules.pop(flow_file, None)
        self._store = store
        self._on_result = on_result
        self.token = _processes.new_token()
        full_env = {**store.env(profile=profile), **(env or {}), _processes.TOKEN_VAR: self.token}
        with _keep_sigint(), _keep_cwd():
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
        module = click_api.loaded_modules.get(flow_file)
        if module is not None:
            setattr(module, _SOURCE_ATTR, source)

    # -- every way of starting a process goes through _call / _acall ----------

    @contextlib.contextmanager
    def _calling(self) -> Iterator[None]:
        # Metaflow leaves its log files open in the parent (the async child's
        # handles, the reads that build its error message); that ResourceWarning
        # is not the test's business.
        warnings.filterwarnings("ignore", r"unclosed file .*std(out|err)\.log", ResourceWarning)
        with _store.tempdir(self._store.tmp), _keep_cwd():
            try:
                yield
            except RuntimeError as e:
                if isinstance(e.__cause__, (subprocess.CalledProcessError, TimeoutError)):
                    raise _start_error(self.flow_file, e) from None
                raise

    def _finish(self, result: Any) -> Any:
        _store.bind(result)
        self._on_result(result)
        return result

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self._calling():
            result = method(*args, **kwargs)
        return self._finish(result)

    async def _acall(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self._calling():
            result = await method(*args, **kwargs)
        return self._finish(result)

    def run(self, **kwargs: Any) -> Any:
        return self._call(super().run, **kwargs)

    def resume(self, **kwargs: Any) -> Any:
        return self._call(super().resume, **kwargs)

    def spin(self, pathspec: str, **kwargs: Any) -> Any:
        return self._call(super().spin, pathspec, **kwargs)

    async def async_run(self, **kwargs: Any) -> Any:
        return await self._acall(super().async_run, **kwargs)

    async def async_resume(self, **kwargs: Any) -> Any:
        return await self._acall(super().async_resume, **kwargs)

    async def async_spin(self, pathspec: str, **kwargs: Any) -> Any:
        return await self._acall(super().async_spin, pathspec, **kwargs)

    # -- teardown ---------------------------------------------------------------

    def kill(self) -> List[int]:
        """Kill every process this runner started (the whole tree); return their pids."""
        return _processes.kill_processes([self.token])

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

    def __exit__(self, *exc: Any) -> None:
        self.cleanup()

    async def __aexit__(self, *exc: Any) -> None:
        self.cleanup()
