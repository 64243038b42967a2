"""The fixtures: ``metaflow_store``, ``runner``, ``nbrunner``, ``run_notebook``, ``runner_factory``.

Factories record every Runner they make and tear each one down independently:
kill its process tree first, then clean its files.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

import pytest

from . import _flowfile, _kept, _launcher, _leakguard, _notebook, _processes, _store
from ._snapshot_api import ArtifactSnapshot

if TYPE_CHECKING:
    import metaflow
    import nbformat


@dataclass
class Settings:
    """Plugin settings resolved from the command line and ini."""

    show_output: bool = False
    pylint: bool = False
    use_config: bool = False
    collect: tuple[str, ...] = ()
    keep: str = "none"
    durations: int = 5
    timeout: float | None = None
    leak_guard: bool = True
    # "local": @kubernetes/@batch steps run locally; "keep": left as they are.
    # None: "local" with the hermetic store, "keep" with --metaflow-use-config.
    remote: str | None = None
    # "fork": tasks start from a per-run zygote (Linux); "exec": fresh interpreters (_launcher).
    launcher: str = "exec"

    @property
    def remote_mode(self) -> str:
        return self.remote or ("keep" if self.use_config else "local")


# The run timeout when none is configured: generous, like Metaflow's file_read_timeout,
# so that a run blocked forever (a step reading stdin, an unreachable endpoint) ends.
DEFAULT_RUN_TIMEOUT = 3600.0


@dataclass
class SessionState:
    settings: Settings
    current_item: pytest.Item | None = None
    kept_session: Path | None = None
    run_infos: list[dict[str, Any]] = field(default_factory=list)
    watchdog: _processes.Watchdog = field(default_factory=_processes.Watchdog)
    remover: _store.Remover = field(default_factory=_store.Remover)


SESSION_KEY = pytest.StashKey[SessionState]()
RUNS_KEY = pytest.StashKey[list[Any]]()
STORE_KEY = pytest.StashKey[_store.Store]()
FAILED_KEY = pytest.StashKey[bool]()  # set by the plugin when setup or call failed


def marker_options(node: pytest.Item) -> dict[str, Any]:
    """Keyword arguments of the ``metaflow`` markers on ``node``, the closest winning."""
    options: dict[str, Any] = {}
    for marker in reversed(list(node.iter_markers("metaflow"))):
        if marker.args:
            raise TypeError(f"@pytest.mark.metaflow takes keyword arguments only, got {marker.args!r}")
        options.update(marker.kwargs)
    return options


def parse_timeout(value: Any, source: str) -> float | None:
    """A run timeout in seconds (``None``/0: none); ``ValueError`` naming ``source`` if bad."""
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds >= 0 or isinstance(value, bool):
        raise ValueError(f"{source}: the run timeout must be a number of seconds >= 0, got {value!r}")
    return seconds or None


def record(item: pytest.Item | None, result: Any) -> None:
    if item is not None:
        item.stash.setdefault(RUNS_KEY, []).append(result)


class RunnerFixture(Protocol):
    """Type of the ``runner`` and ``runner_factory`` fixtures."""

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
    ) -> metaflow.Runner: ...


class RunnerFactory:
    """Makes ``metaflow.Runner`` objects bound to one store, and tears them all down."""

    def __init__(
        self,
        store: _store.Store,
        settings: Settings,
        search_dirs: Callable[[], list[Path]],
        on_result: Callable[[Any], None],
        *,
        run_timeout: float | None = None,
        watchdog: _processes.Watchdog | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self._search_dirs = search_dirs
        self._on_result = on_result
        self.run_timeout = run_timeout
        self.watchdog = watchdog
        self.runners: list[Any] = []

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
    ) -> metaflow.Runner:
        if launcher is not None:
            env = {**(env or {}), **_launcher.env(_launcher.validate(launcher, "runner(launcher=...)"))}
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
            watchdog=self.watchdog,
            remote=self.settings.remote_mode if remote is None else remote,
            **top_level_kwargs,
        )
        self.runners.append(runner)
        return runner

    def close(self) -> None:
        """Kill every process of every runner, then delete their temporary files."""
        with contextlib.ExitStack() as stack:
            for runner in self.runners:
                stack.callback(runner.cleanup)
            for runner in self.runners:
                stack.callback(runner.kill)
        self.runners.clear()


def _search_dirs(request: pytest.FixtureRequest, state: SessionState) -> Callable[[], list[Path]]:
    def dirs() -> list[Path]:
        item = state.current_item
        first = [Path(item.path).parent] if item is not None else []
        return [*first, Path(str(request.config.rootpath)), Path.cwd()]

    return dirs


def kept_path(item: pytest.Item, state: SessionState) -> Path | None:
    """Where ``item``'s store is (or will be) kept, ``None`` if it is removed at teardown."""
    keep = state.settings.keep
    if state.kept_session is None or not (keep == "all" or (keep == "failed" and item.stash.get(FAILED_KEY, False))):
        return None
    return _kept.target(state.kept_session, item.nodeid)


def _dispose(item: pytest.Item, store: _store.Store, state: SessionState) -> None:
    # Runs after the call report: FAILED_KEY tells whether the test failed.
    if kept_path(item, state) is None:
        # Deleted in the background: the disk waits would otherwise add ~0.1 s to each test.
        state.remover.remove(store.path)
    else:
        _kept.tidy(store.path)


def _test_factory(request: pytest.FixtureRequest, store: _store.Store) -> RunnerFactory:
    """The RunnerFactory of one test: its store, its marker's run timeout, the session watchdog."""
    state = request.config.stash[SESSION_KEY]
    options = marker_options(request.node)
    timeout = state.settings.timeout
    if "timeout" in options:
        timeout = parse_timeout(options["timeout"], f"@pytest.mark.metaflow(timeout=...) on {request.node.nodeid}")
    return RunnerFactory(
        store,
        state.settings,
        _search_dirs(request, state),
        lambda res: record(request.node, res),
        run_timeout=timeout,
        watchdog=state.watchdog,
    )


@pytest.fixture
def metaflow_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_store.Store]:
    """This test's hermetic Metaflow store; the Metaflow client in the test reads it.

    ``store.path`` is the directory, ``store.env()`` the environment that points a
    Metaflow process at it. Removed at teardown, or kept (``--metaflow-keep``).
    """
    state = request.config.stash[SESSION_KEY]
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
    launcher = marker_options(request.node).get("launcher", state.settings.launcher)
    store.extra_env.update(
        _launcher.env(_launcher.validate(launcher, f"@pytest.mark.metaflow(launcher=...) on {request.node.nodeid}"))
    )
    request.node.stash[STORE_KEY] = store
    with contextlib.ExitStack() as stack:
        stack.callback(_dispose, request.node, store, state)
        if not store.use_config:
            stack.enter_context(_store.client_bound_to(store, current=True))
        yield store


@pytest.fixture
def runner(request: pytest.FixtureRequest, metaflow_store: _store.Store) -> Iterator[RunnerFixture]:
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
    state = request.config.stash[SESSION_KEY]
    factory = _test_factory(request, metaflow_store)
    guard = _guard(state, metaflow_store)
    yield factory
    runners = list(factory.runners)
    factory.close()
    if guard is not None:
        guard.check(runners)


def _guard(state: SessionState, store: _store.Store, *, bare_runs: bool = True) -> _leakguard.LeakGuard | None:
    if not state.settings.leak_guard:
        return None
    return _leakguard.LeakGuard(store.tmp, files=not store.use_config, bare_runs=bare_runs)


class NBRunnerFixture(Protocol):
    """Type of the ``nbrunner`` fixture."""

    def __call__(
        self,
        flow: type | str,
        *,
        show_output: bool | None = None,
        profile: str | None = None,
        env: dict[str, str] | None = None,
        base_dir: str | None = None,
        file_read_timeout: int = 3600,
        **top_level_kwargs: Any,
    ) -> _notebook.FixtureNBRunner: ...


@pytest.fixture
def nbrunner(request: pytest.FixtureRequest, metaflow_store: _store.Store) -> Iterator[NBRunnerFixture]:
    """Run a flow class defined in a test (or conftest, or any module), or a string of
    flow source as a notebook cell would hold it, with Metaflow's NBRunner API.

    ``nbrunner(flow, *, show_output=False, profile=None, env=None, base_dir=None,
    file_read_timeout=3600, **top_level_kwargs)`` returns an object with ``nbrun``,
    ``nbresume``, ``run``, ``resume``, ``async_run``, ``async_resume`` and ``cleanup``.
    The steps see every name of the flow's module. A source string with several
    FlowSpec subclasses runs the last one. The flow file generated for it goes to
    ``base_dir`` (default: this test's temp area) and is removed at teardown, after
    every process it started is killed. The run's cwd is ``base_dir`` if given,
    else the current directory.
    """
    factory = _test_factory(request, metaflow_store)
    made = _notebook.NBRunnerFactory(factory, metaflow_store.tmp)
    guard = _guard(request.config.stash[SESSION_KEY], metaflow_store)
    runners = factory.runners
    with contextlib.ExitStack() as stack:
        stack.callback(made.close)
        stack.callback(factory.close)
        yield made
        runners = list(factory.runners)
    if guard is not None:
        guard.check(runners)


class NotebookFixture(Protocol):
    """Type of the ``run_notebook`` fixture."""

    def __call__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: int | None = 600,
        kernel_name: str = "python3",
        cwd: str | None = None,
        env: dict[str, str] | None = None,
    ) -> nbformat.NotebookNode: ...


@pytest.fixture
def run_notebook(request: pytest.FixtureRequest, metaflow_store: _store.Store) -> Iterator[NotebookFixture]:
    """Execute a ``.ipynb`` in a real Jupyter kernel bound to this test's store.

    ``run_notebook(path, *, timeout=600, kernel_name="python3", cwd=None, env=None)``
    returns the executed notebook (``nbformat.NotebookNode``). Runs the notebook
    makes (e.g. with ``NBRunner(...).nbrun()``) land in this test's store, where
    ``Flow(...)`` in the test finds them. A failing cell raises
    :class:`~pytest_metaflow.NotebookCellError` with the cell's source and the
    kernel's traceback. Needs ``pytest-metaflow[notebook]`` (nbclient, ipykernel).
    A relative ``path`` is looked up like ``runner``'s flow files; the kernel runs
    in the notebook's directory unless ``cwd`` is given. Every kernel, and every
    process it started, is killed at teardown.
    """
    state = request.config.stash[SESSION_KEY]
    dirs = _search_dirs(request, state)
    executor = _notebook.NotebookExecutor(
        metaflow_store,
        lambda path: _flowfile.locate(path, dirs()),
        lambda run: record(request.node, run),
        watchdog=state.watchdog,
    )
    yield executor
    executor.close()


@pytest.fixture(scope="session")
def runner_factory(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunnerFixture]:
    """Like ``runner``, for module- or session-scoped fixtures sharing a run among tests.

    Runs live in one store per session (per xdist worker), separate from the
    per-test stores, and stay readable from every test. Torn down at session end.
    """
    state = request.config.stash[SESSION_KEY]
    store = _store.Store(tmp_path_factory.mktemp("metaflow-session"), use_config=state.settings.use_config)
    store.extra_env.update(_launcher.env(state.settings.launcher))
    factory = RunnerFactory(
        store,
        state.settings,
        _search_dirs(request, state),
        lambda res: record(state.current_item, res),
        run_timeout=state.settings.timeout,
        watchdog=state.watchdog,
    )
    guard = _guard(state, store, bare_runs=False)
    runners = factory.runners
    with contextlib.ExitStack() as stack:
        stack.callback(store.remove)
        if not store.use_config:
            stack.enter_context(_store.client_bound_to(store, current=False))
        stack.callback(factory.close)
        yield factory
        runners = list(factory.runners)
    if guard is not None:
        guard.check(runners)


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
