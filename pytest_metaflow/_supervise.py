"""Supervision of the processes a runner starts: calls, deadlines, kills, guards.

Every run/resume/spin a :class:`~pytest_metaflow._runner.FixtureRunner` starts is
one :class:`Call`: it carries its own process token (so its whole tree can be
found and killed), its deadline (the run timeout, the only one: collected flow
cases get theirs through the same marker as tests), and the translation of
Metaflow's start errors into the plugin's. The guards keep what Metaflow's
Runner changes in the pytest process (the SIGINT handler, the cwd, an import
that never returns) from leaking into the test.

Importing this module does not import metaflow.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
import warnings
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, Callable, TypeVar

from . import _flowconfig, _processes, _remote, _store, reporting
from .errors import RunTimeoutError

T = TypeVar("T")


@contextlib.contextmanager
def keep_sigint() -> Iterator[None]:
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
def keep_cwd() -> Iterator[None]:
    """Restore the cwd: Metaflow's ``with_dir()`` chdirs without try/finally."""
    cwd = os.getcwd()
    try:
        yield
    finally:
        if os.getcwd() != cwd:
            os.chdir(cwd)


@contextlib.contextmanager
def import_alarm(seconds: float | None, flow_file: str) -> Iterator[None]:
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
    theirs_fired = []

    def on_alarm(signum: int, frame: Any) -> None:
        if old_delay and time.monotonic() - start >= old_delay - 1e-3 and callable(old_handler):
            theirs_fired.append(True)  # delivered now: it must not be re-armed afterwards
            old_handler(signum, frame)  # theirs was due first
            return
        raise RunTimeoutError(reporting.import_timeout(flow_file, seconds))

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, min(seconds, old_delay) if old_delay else seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay and not theirs_fired:
            left = old_delay - (time.monotonic() - start)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3), old_interval)


class Call:
    """One run/resume/spin started by a runner: its token, its command, its deadline."""

    def __init__(self, runner: Any, token: str, seconds: float | None) -> None:
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
        """The :class:`RunTimeoutError` of this call (its deadline passed)."""
        self.reported = True
        command = self.command()
        logs = command.log_files if command is not None else {}
        stdout, stderr = reporting.read_log(logs.get("stdout")), reporting.read_log(logs.get("stderr"))
        message = reporting.run_timeout(result, self.runner.flow_file, self.seconds, stdout, stderr)
        return RunTimeoutError(message, result)


class Supervisor:
    """The calls of one runner: each gets a token (the runner's, extended) and a deadline."""

    def __init__(
        self,
        runner: Any,
        run_timeout: float | None,
        watchdog: _processes.Watchdog | None,
        *,
        tmp: Path,
        finish: Callable[[Any], Any] = lambda result: None,
    ) -> None:
        self.runner = runner
        self.tmp = tmp
        self.finish = finish
        self.run_timeout = run_timeout
        self.watchdog = watchdog
        self.token = _processes.new_token()
        self.calls: list[Call] = []

    def new_call(self) -> Call:
        if not self.calls and self.watchdog is not None:
            self.watchdog.add_token(self.token)
        # Each call gets its own token (extending the runner's) and so its own env
        # dict: Metaflow's CommandManager keeps a reference to the one it was given.
        token = f"{self.token}/{len(self.calls) + 1}"
        self.runner.env_vars = {**self.runner.env_vars, _processes.TOKEN_VAR: token}
        call = Call(self.runner, token, self.run_timeout)
        self.calls.append(call)
        return call

    @contextlib.contextmanager
    def calling(self, call: Call) -> Iterator[None]:
        """Around starting ``call``: Metaflow's start errors become the plugin's."""
        runner = self.runner
        # Metaflow leaves its log files open in the parent (the async child's
        # handles, the reads that build its error message); that ResourceWarning
        # is not the test's business.
        warnings.filterwarnings("ignore", r"unclosed file .*std(out|err)\.log", ResourceWarning)
        with _store.tempdir(self.tmp), keep_cwd():
            try:
                yield
            except RuntimeError as e:
                call.settle()
                if not isinstance(e.__cause__, (subprocess.CalledProcessError, TimeoutError)):
                    raise
                call.kill()  # after file_read_timeout Metaflow leaves the child running
                if call.timed_out:
                    raise call.error() from None
                error = reporting.start_error(runner.flow_file, e, call.command(), runner.file_read_timeout)
                raise _flowconfig.with_path_hint(error, runner.cwd, runner.flow_file) from None
            except (ValueError, TypeError) as e:
                call.settle()
                if type(e) not in (ValueError, TypeError) or call.command() is not None:
                    raise
                # Metaflow checks arguments before starting anything, deep in click_api.
                raise type(e)(f"{runner.flow_file}: {e}") from None
            except BaseException:  # Ctrl-C, pytest-timeout: the deadline is moot
                call.settle()
                raise

    def call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Start ``method`` as one call; ``finish(result)``; raise its timeout if it had one."""
        call = self.new_call()
        with self.calling(call):
            result = method(*args, **kwargs)
        call.settle()
        self.finish(result)
        if call.timed_out:
            raise call.error(result)
        return result

    async def acall(self, method: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Like :meth:`call` for the async methods; the timeout is raised by ``wait()``."""
        call = self.new_call()
        with self.calling(call):
            result = await method(*args, **kwargs)
        # Metaflow's wait(timeout=...) kills with pkill -P (direct children, procps
        # needed); kill the whole tree instead.
        process: Any = result
        process.command_obj.kill = call.kill
        metaflow_wait = process.wait

        async def wait(timeout: float | None = None, stream: str | None = None) -> Any:
            await metaflow_wait(timeout, stream)
            if call.timed_out and not call.reported:
                call.settle()
                raise call.error(result)
            return result

        wait.__doc__ = metaflow_wait.__doc__
        process.wait = wait
        self.finish(result)
        return result

    def kill(self) -> list[int]:
        """Kill every process of every call (the whole tree); return their pids."""
        for call in self.calls:
            call.settle()
        with _remote.jobs_stopped(self.runner, self.token):  # then its @kubernetes/@batch jobs
            killed = _processes.kill_processes([self.token])
        return killed  # the watchdog keeps the token until the run registry releases it, after the leak guard


def keep_logs(commands: dict[int, Any], logs: Path, token: str) -> None:
    """Move the log files of ``commands`` into ``logs`` (Metaflow deletes them on cleanup).

    Same filesystem, so a still-running child keeps writing to them; ``stdout``
    and ``stderr`` of the results stay readable.
    """
    for pid, command in commands.items():
        moved = {}
        for stream, path in command.log_files.items():
            if not path.startswith(str(logs)) and os.path.exists(path):
                target = logs / f"{token}-{pid}-{stream}.log"
                shutil.move(path, target)
                moved[stream] = str(target)
        command.log_files.update(moved)
