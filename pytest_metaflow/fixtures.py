"""The fixtures: ``metaflow_store``, ``runner``, ``nbrunner``, ``run_notebook``, ``runner_factory``.

Fixtures only. Each fixture's value is an instance of a public class whose
``__call__`` is the implementation (:class:`RunnerFixture`,
:class:`~pytest_metaflow._nbrunner.NBRunnerFixture`,
:class:`~pytest_metaflow._run_notebook.NotebookFixture`); the session's state
reaches them through the internal ``_metaflow_session`` fixture (settings in
:mod:`._settings`), and everything they start is torn down by one
:class:`~pytest_metaflow._teardown.RunRegistry` per fixture.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pytest

# Loading the plugin imports this module to register the fixtures: what their bodies use
# is imported when a fixture is set up, so a session that runs no flow does not pay for it.
from . import _launcher, _settings
from ._settings import SessionState, Settings

if TYPE_CHECKING:
    from . import _store
    from ._nbrunner import NBRunnerFixture
    from ._run_notebook import NotebookFixture
    from ._runner import FixtureRunner
    from ._snapshot_api import ArtifactSnapshot
    from ._teardown import RunRegistry


class RunnerFixture:
    """The ``runner`` and ``runner_factory`` fixtures' value: call it to get a Runner for a flow file.

    ``runner(flow_file, *, show_output=None, profile=None, env=None, cwd=None,
    file_read_timeout=3600, remote=None, launcher=None, **top_level_kwargs)``
    returns a :class:`~pytest_metaflow.FixtureRunner` (a ``metaflow.Runner``)
    bound to the fixture's store. Every runner it makes is an entry of the
    fixture's run registry, torn down at the fixture's teardown.
    """

    def __init__(
        self,
        store: _store.Store,
        settings: Settings,
        search_dirs: Callable[[], list[Path]],
        on_result: Callable[[Any], None],
        registry: RunRegistry,
        *,
        run_timeout: float | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self._search_dirs = search_dirs
        self._on_result = on_result
        self.registry = registry
        self.run_timeout = run_timeout

    @property
    def runners(self) -> list[Any]:
        """The runners made so far and not yet torn down."""
        return list(self.registry.entries)

    def __call__(
        self,
        flow_file: str | os.PathLike[str],
        *,
        show_output: bool | None = None,
        profile: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        file_read_timeout: int = 3600,
        remote: str | None = None,
        launcher: str | None = None,
        **top_level_kwargs: Any,
    ) -> FixtureRunner:
        """A Runner for ``flow_file`` (relative: next to the test, then under the rootdir, then in the cwd).

        Parameters
        ----------
        flow_file : str or os.PathLike
            The flow file.
        show_output : bool, optional
            Stream the run's output (default: ``--metaflow-show-output``).
        profile, env, cwd, file_read_timeout, **top_level_kwargs
            As ``metaflow.Runner`` takes them; ``env`` adds to the store's environment.
        remote : {"local", "keep"}, optional
            ``@kubernetes``/``@batch`` steps run locally or are kept (default: ``--metaflow-remote``).
        launcher : {"fork", "exec"}, optional
            How the runs start their tasks (default: the marker's, else ``--metaflow-launcher``).

        Returns
        -------
        FixtureRunner
            A ``metaflow.Runner`` bound to the store.
        """
        if launcher is not None:
            env = {**(env or {}), **_launcher.env(_launcher.validate(launcher, "runner(launcher=...)"))}
        from . import _flowfile

        caller = Path(sys._getframe(1).f_code.co_filename).parent
        dirs = self._search_dirs()
        path = _flowfile.locate(flow_file, [dirs[0], caller, *dirs[1:]])
        from ._runner import FixtureRunner  # first use imports metaflow

        top_level_kwargs.setdefault("pylint", self.settings.pylint)
        runner = FixtureRunner(
            path,
            store=self.store,
            on_result=self._on_result,
            show_output=self.settings.show_output if show_output is None else show_output,
            profile=profile,
            env=env,
            cwd=cwd,
            file_read_timeout=file_read_timeout,
            run_timeout=self.run_timeout,
            watchdog=self.registry.watchdog,
            remote=self.settings.remote_mode if remote is None else remote,
            **top_level_kwargs,
        )
        self.registry.add(runner)
        return runner


def _search_dirs(request: pytest.FixtureRequest, state: SessionState) -> Callable[[], list[Path]]:
    def dirs() -> list[Path]:
        item = state.current_item
        first = [Path(item.path).parent] if item is not None else []
        return [*first, Path(str(request.config.rootpath)), Path.cwd()]

    return dirs


@contextlib.contextmanager
def _registry(state: SessionState, store: _store.Store, *, bare_runs: bool = True) -> Iterator[RunRegistry]:
    """A run registry for one fixture, closed (kill, cleanup, leak guard, release) when the fixture ends."""
    from . import _leakguard
    from ._teardown import RunRegistry

    guard = (
        _leakguard.LeakGuard(store.tmp, files=not store.use_config, bare_runs=bare_runs)
        if state.settings.leak_guard
        else None
    )
    registry = RunRegistry(guard, state.watchdog)
    try:
        yield registry
    finally:
        registry.close()


def _test_runner(
    request: pytest.FixtureRequest, state: SessionState, store: _store.Store, registry: RunRegistry
) -> RunnerFixture:
    """The RunnerFixture of one test: its store, its marker's run timeout, its registry."""
    test = _settings.for_test(request.node, state.settings)
    return RunnerFixture(
        store,
        state.settings,
        _search_dirs(request, state),
        lambda res: _settings.record(request.node, res),
        registry,
        run_timeout=test.run_timeout,
    )


@pytest.fixture(scope="session")
def _metaflow_session(request: pytest.FixtureRequest) -> SessionState:
    """The session state of pytest-metaflow (settings, watchdog, kept stores): how fixtures reach it."""
    return _settings.state(request.config)


@pytest.fixture
def metaflow_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, _metaflow_session: SessionState
) -> Iterator[_store.Store]:
    """This test's hermetic Metaflow store; the Metaflow client in the test reads it.

    ``store.path`` is the directory, ``store.env()`` the environment that points a
    Metaflow process at it. Removed at teardown, or kept (``--metaflow-keep``).
    """
    from . import _kept, _store

    state = _metaflow_session
    if state.settings.keep == "none":
        path = tmp_path_factory.mktemp("metaflow-")
    else:
        # Made where it is kept: runs record their datastore's absolute path, so
        # a store cannot be moved after the fact.
        if state.kept_session is None:
            is_worker = hasattr(request.config, "workerinput")
            state.kept_session = _kept.session_dir(tmp_path_factory.getbasetemp(), is_worker=is_worker)
            _kept.prune(state.kept_session)
        path = _kept.fresh(_kept.target(state.kept_session, request.node.nodeid))
    store = _store.Store(path, use_config=state.settings.use_config)
    store.extra_env.update(_launcher.env(_settings.for_test(request.node, state.settings).launcher))
    request.node.stash[_settings.STORE_KEY] = store
    with contextlib.ExitStack() as stack:
        stack.callback(_settings.dispose_store, request.node, store, state)
        if not store.use_config:
            stack.enter_context(_store.client_bound_to(store, current=True))
        yield store


@pytest.fixture
def runner(
    request: pytest.FixtureRequest, metaflow_store: _store.Store, _metaflow_session: SessionState
) -> Iterator[RunnerFixture]:
    """Make a ``metaflow.Runner`` for a flow file, bound to this test's store.

    ``runner(flow_file, *, show_output=False, profile=None, env=None, cwd=None,
    file_read_timeout=3600, remote=None, **top_level_kwargs)``. A relative
    ``flow_file`` is looked up next to the test file, then under the rootdir,
    then in the cwd. ``remote="local"`` runs ``@kubernetes``/``@batch`` steps
    locally, ``"keep"`` leaves them alone (default: ``--metaflow-remote``).
    Every process the runners started is killed and their files removed at
    teardown. ``@pytest.mark.metaflow(timeout=SECONDS)`` (or
    ``--metaflow-timeout``, default 3600 s) bounds each run; then the leak
    guard checks that nothing was left behind.
    """
    with _registry(_metaflow_session, metaflow_store) as registry:
        yield _test_runner(request, _metaflow_session, metaflow_store, registry)


@pytest.fixture
def nbrunner(
    request: pytest.FixtureRequest, metaflow_store: _store.Store, _metaflow_session: SessionState
) -> Iterator[NBRunnerFixture]:
    """Run a flow class defined in a test (or conftest, or any module), or a string of
    flow source as a notebook cell would hold it, with Metaflow's NBRunner API.

    ``nbrunner(flow, *, show_output=False, profile=None, env=None, base_dir=None,
    file_read_timeout=3600, remote=None, launcher=None, **top_level_kwargs)`` returns an object with ``nbrun``,
    ``nbresume``, ``run``, ``resume``, ``async_run``, ``async_resume`` and ``cleanup``.
    The steps see every name of the flow's module. A source string with several
    FlowSpec subclasses runs the last one. The flow file generated for it goes to
    ``base_dir`` (default: this test's temp area) and is removed at teardown, after
    every process it started is killed; then the leak guard checks that nothing
    was left behind. The run's cwd is ``base_dir`` if given, else the current directory.
    """
    from ._nbrunner import NBRunnerFixture

    with _registry(_metaflow_session, metaflow_store) as registry:
        made = NBRunnerFixture(_test_runner(request, _metaflow_session, metaflow_store, registry), metaflow_store.tmp)
        registry.add(made)  # first in, so its generated files go after every runner's teardown
        yield made


@pytest.fixture
def run_notebook(
    request: pytest.FixtureRequest, metaflow_store: _store.Store, _metaflow_session: SessionState
) -> Iterator[NotebookFixture]:
    """Execute a ``.ipynb`` in a real Jupyter kernel bound to this test's store.

    ``run_notebook(path, *, timeout=600, kernel_name="python3", cwd=None, env=None)``
    returns the executed notebook (``nbformat.NotebookNode``). Runs the notebook
    makes (e.g. with ``NBRunner(...).nbrun()``) land in this test's store, where
    ``Flow(...)`` in the test finds them. A failing cell raises
    :class:`~pytest_metaflow.NotebookCellError` with the cell's source and the
    kernel's traceback. Needs ``pytest-metaflow[notebook]`` (nbclient, ipykernel).
    A relative ``path`` is looked up like ``runner``'s flow files; the kernel runs
    in the notebook's directory unless ``cwd`` is given. Every kernel, and every
    process it started, is killed at teardown (and by the session watchdog should
    pytest die first); then the leak guard checks that nothing was left behind.
    """
    from . import _flowfile
    from ._run_notebook import NotebookFixture

    state = _metaflow_session
    dirs = _search_dirs(request, state)
    with _registry(state, metaflow_store) as registry:
        yield NotebookFixture(
            metaflow_store,
            lambda path: _flowfile.locate(path, dirs()),
            lambda run: _settings.record(request.node, run),
            registry.add,
            watchdog=state.watchdog,
        )


@pytest.fixture(scope="session")
def runner_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, _metaflow_session: SessionState
) -> Iterator[RunnerFixture]:
    """Like ``runner``, for module- or session-scoped fixtures sharing a run among tests.

    Runs live in one store per session (per xdist worker), separate from the
    per-test stores, and stay readable from every test. Torn down at session end.
    """
    from . import _store

    state = _metaflow_session
    store = _store.Store(tmp_path_factory.mktemp("metaflow-session"), use_config=state.settings.use_config)
    store.extra_env.update(_launcher.env(state.settings.launcher))
    with contextlib.ExitStack() as stack:
        stack.callback(store.remove)
        if not store.use_config:
            stack.enter_context(_store.client_bound_to(store, current=False))
        registry = stack.enter_context(_registry(state, store, bare_runs=False))
        yield RunnerFixture(
            store,
            state.settings,
            _search_dirs(request, state),
            lambda res: _settings.record(state.current_item, res),
            registry,
            run_timeout=state.settings.timeout,
        )


@pytest.fixture
def artifact_snapshot(request: pytest.FixtureRequest) -> ArtifactSnapshot:
    """Snapshot assertions on Metaflow results, kept by syrupy (``pytest --snapshot-update``).

    ``artifact_snapshot.assert_match(result, *, step=None, names=None, rtol=None, atol=None)``;
    see :class:`pytest_metaflow.ArtifactSnapshot`. Needs ``pytest-metaflow[snapshot]``.
    """
    try:
        from ._snapshot import make_fixture  # imports syrupy
    except ImportError as e:
        pytest.fail(f"artifact_snapshot needs syrupy: pip install 'pytest-metaflow[snapshot]' ({e})", pytrace=False)
    return make_fixture(request)
