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

from . import _flowfile, _store

if TYPE_CHECKING:
    import metaflow


@dataclass
class Settings:
    """Plugin settings resolved from the command line and ini."""

    show_output: bool = False
    pylint: bool = False
    use_config: bool = False


@dataclass
class SessionState:
    settings: Settings
    current_item: Optional[pytest.Item] = None
    session_store: Optional[_store.Store] = None
    session_exit: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    remover: _store.Remover = field(default_factory=_store.Remover)


SESSION_KEY = pytest.StashKey[SessionState]()
RUNS_KEY = pytest.StashKey[List[Any]]()


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
    ) -> None:
        self.store = store
        self.settings = settings
        self._search_dirs = search_dirs
        self._on_result = on_result
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
        # Deleted in the background: the disk waits would otherwise add ~0.1 s to each test.
        stack.callback(state.remover.remove, store.path)
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
    teardown.
    """
    state = request.config.stash[SESSION_KEY]
    factory = RunnerFactory(
        metaflow_store, state.settings, _search_dirs(request, state), lambda res: record(request.node, res)
    )
    yield factory
    factory.close()


@pytest.fixture(scope="session")
def runner_factory(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunnerFixture]:
    """Like ``runner``, for module- or session-scoped fixtures sharing a run among tests.

    Runs live in one store per session (per xdist worker), separate from the
    per-test stores, and stay readable from every test. Torn down at session end.
    """
    state = request.config.stash[SESSION_KEY]
    store = _store.Store(tmp_path_factory.mktemp("metaflow-session"), use_config=state.settings.use_config)
    factory = RunnerFactory(
        store, state.settings, _search_dirs(request, state), lambda res: record(state.current_item, res)
    )
    with contextlib.ExitStack() as stack:
        stack.callback(store.remove)
        if not store.use_config:
            stack.enter_context(_store.client_bound_to(store, current=False))
        stack.callback(factory.close)
        yield factory
