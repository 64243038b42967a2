"""The hermetic Metaflow store: where runs write, what their environment says, and
where the Metaflow client in the pytest process reads.

A store is a directory holding a local datastore + local metadata (``.metaflow``),
spin's store (``.metaflow_spin``), a client cache, an empty ``METAFLOW_HOME`` and
a ``tmp`` directory. Each test gets one; ``runner_factory`` has one per session.

Metaflow's client keeps the metadata provider and its datastore root in
class-level globals (``client.core.current_metadata``, ``LocalMetadataProvider._INFO``,
``LocalStorage.datastore_root``), so a ``Run`` obtained from one store breaks as
soon as another store is read. The plugin installs its own subclasses of the
local and spin providers whose storage root is chosen per lookup: a path that
names a run goes to the store holding that run, listings go to the current
store. Objects handed out by a session-scoped fixture thus stay readable in
every test, and ``Flow(...)`` in a test body sees exactly that test's runs.
"""

from __future__ import annotations

import contextlib
import glob
import os
import queue
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from . import _coverage
from .errors import PytestMetaflowError

FALLBACK_USER = "pytest"


def resolve_user() -> Optional[str]:
    """The user Metaflow would pick from this environment, ``None`` when it would fail."""
    for var in ("METAFLOW_USER", "SUDO_USER", "USERNAME", "USER"):
        user = os.environ.get(var)
        if user and user != "root":
            return user
    return None


class Store:
    """A directory that Metaflow runs and the client use instead of the user's setup."""

    def __init__(self, path: Path, *, use_config: bool = False) -> None:
        self.path = Path(path)
        self.use_config = use_config
        self.tmp = self.path / "tmp"
        self.logs = self.path / "logs"
        self.home = self.path / "home"
        for d in (self.path / ".metaflow", self.path / ".metaflow_spin", self.tmp, self.logs, self.home):
            d.mkdir(parents=True, exist_ok=True)
        self._run_ids: Dict[str, int] = {}
        # Added last to every run's environment by env() (the metaflow_s3 fixture's S3 settings).
        self.extra_env: Dict[str, str] = {}

    def claim(self, result: Any) -> None:
        """Fail loudly if two runs in this store got the same run id.

        Local run ids are microsecond timestamps taken by each Metaflow process
        with no uniqueness check (Metaflow issue 1237): two runs started in the
        same microsecond would write into one run directory.
        """
        run = getattr(result, "run", None)
        if run is None:  # spin results live in the spin store, ids from a counter
            return
        pathspec = run.pathspec
        pid = id(result.command_obj) if hasattr(result, "command_obj") else id(result)
        if self._run_ids.setdefault(pathspec, pid) != pid:
            raise PytestMetaflowError(
                f"two runs in one store got the same run id {pathspec} (Metaflow issue 1237: "
                "local run ids are microsecond timestamps); their data is mixed, rerun the test"
            )

    @property
    def datastore_dir(self) -> str:
        return str(self.path / ".metaflow")

    def env(self, *, profile: Optional[str] = None) -> Dict[str, str]:
        """Environment for a run's process tree (added on top of ``os.environ``)."""
        env = {"TMPDIR": str(self.tmp), **_coverage.child_env()}
        if resolve_user() is None:
            env["METAFLOW_USER"] = FALLBACK_USER
        if self.use_config:
            return {**env, **self.extra_env}
        env.update(
            METAFLOW_DEFAULT_DATASTORE="local",
            METAFLOW_DEFAULT_METADATA="local",
            METAFLOW_DATASTORE_SYSROOT_LOCAL=str(self.path),
            METAFLOW_DATASTORE_SYSROOT_SPIN=str(self.path),
            METAFLOW_CLIENT_CACHE_PATH=str(self.path / "client_cache"),
        )
        if profile is None:
            # An explicit profile= means the user wants their configuration.
            env.update(METAFLOW_HOME=str(self.home), METAFLOW_PROFILE="")
        return {**env, **self.extra_env}

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class Remover:
    """Deletes directories in a background thread.

    Deleting a store after a few runs waits on the disk for 0.1-0.4 s (hundreds
    of ``rmdir``; almost no CPU), which would be added to every test. The
    directory is renamed away at once, so it is gone from its path when the test
    ends, and deleted while the next test runs. :meth:`close` waits for every
    deletion (end of session).
    """

    def __init__(self) -> None:
        self._queue: "queue.SimpleQueue[Optional[Path]]" = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None

    def remove(self, path: Path) -> None:
        trash = path.with_name(f".removing-{path.name}")
        try:
            path.rename(trash)
        except OSError:  # already gone, or not renamable: delete it in place
            trash = path
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="pytest-metaflow-remover", daemon=True)
            self._thread.start()
        self._queue.put(trash)

    def _work(self) -> None:
        while True:
            path = self._queue.get()
            if path is None:
                return
            shutil.rmtree(path, ignore_errors=True)

    def close(self) -> None:
        """Wait until every directory handed to :meth:`remove` is deleted."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None


# --- the client side -------------------------------------------------------

_lock = threading.RLock()
_providers: Optional[Tuple[Any, Any]] = None
# Store paths the routed providers may read, the current test's store first.
_roots: List[str] = []


def _routed(base: Any) -> Any:
    storage_base = base._get_storage_class()
    storage = type("Routed" + storage_base.__name__, (storage_base,), {"datastore_root": None})

    class Routed(base):  # type: ignore[valid-type, misc]
        @classmethod
        def _get_storage_class(cls) -> Any:
            return storage

        @classmethod
        def _make_path(cls, flow_name=None, run_id=None, step_name=None, task_id=None, create_on_absent=True):  # type: ignore[no-untyped-def]
            with _lock:
                storage.datastore_root = _root_for(cls.DATASTORE_DIR, flow_name, run_id)
                return super()._make_path(flow_name, run_id, step_name, task_id, create_on_absent)

    Routed.__name__ = Routed.__qualname__ = "Routed" + base.__name__
    return Routed


def _root_for(datastore_dir: str, flow_name: Optional[str], run_id: Optional[str]) -> Optional[str]:
    roots = [os.path.join(r, datastore_dir) for r in _roots]
    if flow_name and run_id:
        for root in roots:
            if os.path.isdir(os.path.join(root, flow_name, str(run_id))):
                return root
    return roots[0] if roots else None


def root_holding_run(pathspec: str) -> Optional[str]:
    """The bound store (its path) holding the run a spin pathspec names, if any."""
    parts = pathspec.split("/")
    # run/step, run/step/task, flow/run/step, flow/run/step/task; local run ids are numeric
    candidates = [parts[1]] if len(parts) == 4 else [p for p in parts[:2] if p.isdigit()] if len(parts) > 1 else []
    for root in list(_roots):
        for run_id in candidates:
            if glob.glob(os.path.join(glob.escape(root), ".metaflow", "*", run_id)):
                return root
    return None


def providers() -> Tuple[Any, Any]:
    """The routed local and spin metadata provider classes (made once per process)."""
    global _providers
    if _providers is None:
        from metaflow.plugins.metadata_providers.local import LocalMetadataProvider
        from metaflow.plugins.metadata_providers.spin import SpinMetadataProvider

        _providers = (_routed(LocalMetadataProvider), _routed(SpinMetadataProvider))
    return _providers


def bind(result: Any) -> Any:
    """Make a client object (or the ``.run``/``.task`` of an Executing*) read through the router."""
    local, spin = providers()
    obj = getattr(result, "run", None) or getattr(result, "task", None) or result
    meta = getattr(obj, "_metaflow", None)
    if meta is not None:
        meta.metadata = spin if getattr(meta.metadata, "TYPE", "") == "spin" else local
    return result


def _client_state() -> Dict[Tuple[Any, str], Any]:
    from metaflow.client import core
    from metaflow.plugins.datastores.local_storage import LocalStorage
    from metaflow.plugins.datastores.spin_storage import SpinStorage
    from metaflow.plugins.metadata_providers.local import LocalMetadataProvider
    from metaflow.plugins.metadata_providers.spin import SpinMetadataProvider

    return {
        (core, "current_metadata"): core.current_metadata,
        (core, "current_namespace"): core.current_namespace,
        (core, "filecache"): core.filecache,
        (LocalMetadataProvider, "_INFO"): LocalMetadataProvider.__dict__.get("_INFO"),
        (SpinMetadataProvider, "_INFO"): SpinMetadataProvider.__dict__.get("_INFO"),
        (LocalStorage, "datastore_root"): LocalStorage.datastore_root,
        (SpinStorage, "datastore_root"): SpinStorage.datastore_root,
    }


@contextlib.contextmanager
def client_bound_to(store: Store, *, current: bool) -> Iterator[None]:
    """Point the Metaflow client of this process at ``store`` and restore it afterwards.

    ``current=True`` (a test's store) puts it first: listings such as
    ``Flow(...).runs()`` read it. ``current=False`` (the session store) only makes
    its runs reachable, and is the current store while no test store is bound.
    """
    from metaflow.client import core
    from metaflow.client.filecache import FileCache

    saved = _client_state()
    local, _ = providers()
    root = str(store.path)
    with _lock:
        if current:
            _roots.insert(0, root)
        else:
            _roots.append(root)
    local._INFO = _roots[0]
    core.current_metadata = local
    core.current_namespace = None  # type: ignore[assignment]  # the store holds only this test's runs: show them all
    core.filecache = FileCache(cache_dir=str(store.path / "client_cache"))
    try:
        yield
    finally:
        with _lock:
            _roots.remove(root)
        for (owner, name), value in saved.items():
            setattr(owner, name, value)
        if _roots:
            local._INFO = _roots[0]


@contextlib.contextmanager
def tempdir(path: Path) -> Iterator[None]:
    """Send the ``tempfile`` files Metaflow makes in this process (FIFOs, log dirs) to ``path``."""
    previous = tempfile.tempdir
    tempfile.tempdir = str(path)
    try:
        yield
    finally:
        # Leave it alone if a concurrent call (async runs) changed it meanwhile.
        if tempfile.tempdir == str(path):
            tempfile.tempdir = previous
