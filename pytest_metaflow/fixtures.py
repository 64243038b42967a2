"""The fixtures: ``metaflow_store``, ``runner``, ``runner_factory``.

Factories record every Runner they make and tear each one down independently:
kill its process tree first, then clean its files.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Protocol, Union

import pytest

from . import _flowfile, _leakguard, _processes, _store

if TYPE_CHECKING:
    import metaflow


@dataclass
class Settings:
    """Plugin settings resolved from the command line and ini."""

    show_output: bool = False
    pylint: bool = False
    use_config: bool = False
    timeout: Optional[float] = None
    leak_guard: bool = True


@dataclass
class SessionState:
    settings: Settings
    current_item: Optional[pytest.Item] = None
    session_store: Optional[_store.Store] = None
    session_exit: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    watchdog: _processes.Watchdog = field(default_factory=_processes.Watchdog)


SESSION_KEY = pytest.StashKey[SessionState]()
RUNS_KEY = pytest.StashKey[List[Any]]()


def marker_options(node: pytest.Item) -> Dict[str, Any]:
    """Keyword arguments of the ``metaflow`` markers on ``node``, the closest winning."""
    options: Dict[str, Any] = {}
    for marker in reversed(list(node.iter_markers("metaflow"))):
        if marker.args:
            raise TypeError(f"@pytest.mark.metaflow takes keyword arguments only, got {marker.args!r}")
        options.update(marker.kwargs)
    return options


def parse_timeout(value: Any, source: str) -> Optional[float]:
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


def record(item: Optional[pytest.Item], result: Any) -> None:
    if item is not None:
        item.stash.setdefault(RUNS_KEY, []).append(result)


class RunnerFixture(Protocol):
    """Type of the ``runner`` and ``runner_factory`` fixtures."""

    def __call__(
        self,
        flow_file: Union[str, "os.PathLike[str]"],
        *,
        show_output: Optional[bool] = None,
        profile: Optional[str] = None,
        env: Optional[Dict[str, str]] = None,
        cwd: Optional[str] = None,
        file_read_timeout: int = 3600,
        **top_level_kwargs: Any,
    ) -> "metaflow.Runner": ...


class RunnerFactory:
    """Makes ``metaflow.Runner`` objects bound to one store, and tears them all down."""

    def __init__(
        self,
        store: _store.Store,
        settings: Settings,
        search_dirs: Callable[[], List[Path]],
        on_result: Callable[[Any], None],
        *,
        run_timeout: Optional[float] = None,
        watchdog: Optional[_processes.Watchdog] = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self._search_dirs = search_dirs
        self._on_result = on_result
        self.run_timeout = run_timeout
        self.watchdog = watchdog
        self.runners: List[Any] = []

    def __call__(
        self,
        flow_file: Union[str, "os.PathLike[str]"],
        *,
        show_output: Optional[bool] = None,
        profile: Optional[str] = None,
        env: Optional[Dict[str, str]] = None,
        cwd: Optional[str] = None,
        file_read_timeout: int = 3600,
        **top_level_kwargs: Any,
    ) -> "metaflow.Runner":
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


def _search_dirs(request: pytest.FixtureRequest, state: SessionState) -> Callable[[], List[Path]]:
    def dirs() -> List[Path]:
        item = state.current_item
        first = [Path(item.path).parent] if item is not None else []
        return [*first, Path(str(request.config.rootpath)), Path.cwd()]

    return dirs


@pytest.fixture
def metaflow_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_store.Store]:
    """This test's hermetic Metaflow store; the Metaflow client in the test reads it.

    ``store.path`` is the directory, ``store.env()`` the environment that points a
    Metaflow process at it. Removed at teardown.
    """
    state = request.config.stash[SESSION_KEY]
    store = _store.Store(tmp_path_factory.mktemp("metaflow-"), use_config=state.settings.use_config)
    with contextlib.ExitStack() as stack:
        stack.callback(store.remove)
        if not store.use_config:
            stack.enter_context(_store.client_bound_to(store, current=True))
        yield store


@pytest.fixture
def runner(request: pytest.FixtureRequest, metaflow_store: _store.Store) -> Iterator[RunnerFixture]:
    """Make a ``metaflow.Runner`` for a flow file, bound to this test's store.

    ``runner(flow_file, *, show_output=False, profile=None, env=None, cwd=None,
    file_read_timeout=3600, **top_level_kwargs)``. A relative ``flow_file`` is
    looked up next to the test file, then under the rootdir, then in the cwd.
    Every process the runners started is killed and their files removed at
    teardown. ``@pytest.mark.metaflow(timeout=SECONDS)`` (or
    ``--metaflow-timeout``) bounds each run; then the leak guard checks that
    nothing was left behind.
    """
    state = request.config.stash[SESSION_KEY]
    options = marker_options(request.node)
    timeout = state.settings.timeout
    if "timeout" in options:
        timeout = parse_timeout(options["timeout"], f"@pytest.mark.metaflow(timeout=...) on {request.node.nodeid}")
    factory = RunnerFactory(
        metaflow_store,
        state.settings,
        _search_dirs(request, state),
        lambda res: record(request.node, res),
        run_timeout=timeout,
        watchdog=state.watchdog,
    )
    guard = _leakguard.LeakGuard(metaflow_store.tmp) if state.settings.leak_guard else None
    yield factory
    tokens = [r.token for r in factory.runners]
    factory.close()
    leaks = guard.leaks(tokens) if guard is not None else []
    if leaks:
        pytest.fail(
            "pytest-metaflow leak guard: the test's runs left behind\n"
            + "\n".join(f"  {leak}" for leak in leaks)
            + "\n(--metaflow-no-leak-guard turns this check off)",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def runner_factory(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunnerFixture]:
    """Like ``runner``, for module- or session-scoped fixtures sharing a run among tests.

    Runs live in one store per session (per xdist worker), separate from the
    per-test stores, and stay readable from every test. Torn down at session end.
    """
    state = request.config.stash[SESSION_KEY]
    store = _store.Store(tmp_path_factory.mktemp("metaflow-session"), use_config=state.settings.use_config)
    factory = RunnerFactory(
        store,
        state.settings,
        _search_dirs(request, state),
        lambda res: record(state.current_item, res),
        run_timeout=state.settings.timeout,
        watchdog=state.watchdog,
    )
    with contextlib.ExitStack() as stack:
        stack.callback(store.remove)
        if not store.use_config:
            stack.enter_context(_store.client_bound_to(store, current=False))
        stack.callback(factory.close)
        yield factory
