"""The Runner the fixtures hand out: a ``metaflow.Runner`` bound to a hermetic store.

This is the only module that imports metaflow at import time; the fixtures
import it on first use, so loading the plugin costs nothing. Supervision of
the processes lives in :mod:`._supervise`, error text in :mod:`.reporting`,
spin's inputs and outputs in :mod:`._spin`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, TypeVar

from . import _store

_store.import_metaflow()  # before any other metaflow import: its import-time warnings are not the test's

from metaflow.exception import MetaflowException  # noqa: E402
from metaflow.flowspec import FlowSpec  # noqa: E402
from metaflow.runner import click_api  # noqa: E402
from metaflow.runner.metaflow_runner import ExecutingRun, ExecutingTask, Runner  # noqa: E402

from . import _flowconfig, _flowfile, _flowimport, _processes, _runtime_server, _spin, _supervise  # noqa: E402
from .errors import InvalidFlowError  # noqa: E402

T = TypeVar("T")


def _origin_run_here(store: _store.Store, kwargs: dict[str, Any]) -> None:
    """Resume reads the origin run from its own store: bring one made elsewhere into it."""
    origin = kwargs.get("origin_run_id")
    if origin is not None and not store.use_config:
        _store.import_run(str(origin), store)


def _artifacts(
    runner: FixtureRunner, pathspec: str, artifacts: dict[str, Any] | None, kwargs: dict[str, Any]
) -> list[Path]:
    """spin's ``artifacts=`` written as the module Metaflow reads (``kwargs["artifacts_module"]``)."""
    flow_cls = _flowfile.loaded_flow_class(click_api.loaded_modules.get(runner.flow_file), FlowSpec)
    return _spin.artifacts_module(flow_cls, pathspec, artifacts, kwargs, runner._store.tmp, runner.token)


def _run_env(
    store: _store.Store, flow_file: str, env: dict[str, str] | None, token: str, *, profile: str | None, remote: str
) -> dict[str, str]:
    """The environment of a runner's processes: the store's, the user's, the process token, the import path."""
    store_env = store.env(profile=profile, remote=remote)
    full_env = {**store_env, **(env or {}), _processes.TOKEN_VAR: token}
    if env and "PYTHONPATH" in env and "PYTHONPATH" in store_env:
        full_env["PYTHONPATH"] = _store.extension_pythonpath(env["PYTHONPATH"])  # the user's, plus the extension
    full_env.update(_flowimport.child_pythonpath(flow_file, full_env))
    return full_env


class FixtureRunner(Runner):
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
        self._supervisor = _supervise.Supervisor(self, run_timeout, watchdog, tmp=store.tmp, finish=self._finish)
        self.token = self._supervisor.token
        full_env = _run_env(store, flow_file, env, self.token, profile=profile, remote=remote)
        # What Metaflow's Runner will run with (it adds os.environ and the profile).
        run_env = {**os.environ, **full_env, **({"METAFLOW_PROFILE": profile} if profile else {})}
        # fork mode: the runtime server starts importing metaflow now, while this process
        # validates and loads the flow; the validation itself is forked from it.
        _runtime_server.prestart(run_env, os.path.abspath(flow_file))
        # Imported here first: checked in a child (timed there), isolated from the test's modules, cached.
        _flowimport.check_in_child(flow_file, trusted_dir=str(store.tmp), timeout=run_timeout, run_env=run_env)
        with _supervise.keep_sigint(), _supervise.keep_cwd(), _supervise.import_alarm(run_timeout, flow_file):
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
        # fork mode: the root process may be forked by the session's runtime server (_runtime_server).
        _runtime_server.route_runs(self.spm, watchdog)

    # -- every way of starting a process is one supervised call -----------------

    def _finish(self, result: Any) -> Any:
        _store.bind(result)
        self._store.claim(result)
        self._on_result(result)
        return result

    def run(self, **kwargs: Any) -> ExecutingRun:
        return self._supervisor.call(super().run, **kwargs)

    def resume(self, **kwargs: Any) -> ExecutingRun:
        _origin_run_here(self._store, kwargs)
        with _flowconfig.for_resume(self):  # a resumed run takes the origin run's configs
            return self._supervisor.call(super().resume, **kwargs)

    def spin(self, pathspec: str, *, artifacts: dict[str, Any] | None = None, **kwargs: Any) -> ExecutingTask:
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
        files = _artifacts(self, pathspec, artifacts, kwargs)
        try:
            with _spin.original_run_store(self, pathspec):
                result = self._supervisor.call(super().spin, pathspec, **kwargs)
        finally:
            for path in files:
                path.unlink(missing_ok=True)
        return _spin.mark_unpersisted(result, kwargs)

    async def async_run(self, **kwargs: Any) -> ExecutingRun:
        return await self._supervisor.acall(super().async_run, **kwargs)

    async def async_resume(self, **kwargs: Any) -> ExecutingRun:
        _origin_run_here(self._store, kwargs)
        with _flowconfig.for_resume(self):
            return await self._supervisor.acall(super().async_resume, **kwargs)

    async def async_spin(
        self, pathspec: str, *, artifacts: dict[str, Any] | None = None, **kwargs: Any
    ) -> ExecutingTask:
        """Like ``spin``, returning as soon as the task started; the artifacts module lives until ``cleanup()``."""
        files = _artifacts(self, pathspec, artifacts, kwargs)
        self._spin_modules.extend(files)  # the spin process reads them after we return
        with _spin.original_run_store(self, pathspec):
            result = await self._supervisor.acall(super().async_spin, pathspec, **kwargs)
        return _spin.mark_unpersisted(result, kwargs)

    # -- teardown ---------------------------------------------------------------

    def kill(self) -> list[int]:
        """Kill every process this runner started (the whole tree); return their pids."""
        return self._supervisor.kill()

    def cleanup(self) -> None:
        """Delete temporary files; logs stay readable through ``stdout``/``stderr``."""
        _supervise.keep_logs(self.spm.commands, self._store.logs, self.token)
        super().cleanup()  # type: ignore[no-untyped-call]
        while self._spin_modules:
            self._spin_modules.pop().unlink(missing_ok=True)

    def __exit__(self, *exc: Any) -> None:
        self.cleanup()

    async def __aexit__(self, *exc: Any) -> None:
        self.cleanup()
