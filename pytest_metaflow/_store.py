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
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import _coverage
from ._settings import REMOTE_CHOICES
from .errors import PytestMetaflowError

FALLBACK_USER = "pytest"
# A Metaflow extension put on the PYTHONPATH of flow processes only (never on pytest's sys.path).
EXTENSION_DIR = str(Path(__file__).parent / "_mfext")


def extension_pythonpath(pythonpath: str | None = None) -> str:
    """``PYTHONPATH`` with the plugin's Metaflow extension first (``pythonpath``: the one to extend)."""
    rest = os.environ.get("PYTHONPATH", "") if pythonpath is None else pythonpath
    return os.pathsep.join([EXTENSION_DIR] + [p for p in rest.split(os.pathsep) if p and p != EXTENSION_DIR])


def resolve_user() -> str | None:
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
        self._run_ids: dict[str, int] = {}
        # Added last to every run's environment by env() (the metaflow_s3 fixture's S3 settings).
        self.extra_env: dict[str, str] = {}

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

    def env(self, *, profile: str | None = None, remote: str = "local") -> dict[str, str]:
        """Environment for a run's process tree (added on top of ``os.environ``).

        ``remote="local"`` runs ``@kubernetes``/``@batch`` steps locally (see ``_mfext``).
        Every place a Metaflow process writes relative to the cwd or the home
        directory is pointed into the store; docs/reliability.md lists them.
        """
        env = {"TMPDIR": str(self.tmp), **_coverage.child_env()}
        if resolve_user() is None:
            env["METAFLOW_USER"] = FALLBACK_USER
        if remote not in REMOTE_CHOICES:
            raise ValueError(f"remote: expected one of {', '.join(REMOTE_CHOICES)}, got {remote!r}")
        if remote == "local":
            env["PYTEST_METAFLOW_REMOTE"] = "local"
        if remote == "local" or not self.use_config:
            # The extension runs @kubernetes/@batch steps locally when asked, and makes
            # `card create` write under the datastore sysroot, where get_cards() reads
            # (not under the cwd: Metaflow #2139).
            env["PYTHONPATH"] = extension_pythonpath()
            # ... and gives every process of the run /dev/null as stdin (a step calling
            # input() would otherwise wait forever on the pipe Metaflow never closes).
            env["PYTEST_METAFLOW_NO_STDIN"] = "1"
            if "METAFLOW_EXTENSIONS_SEARCH_DIRS" in os.environ:
                env["METAFLOW_EXTENSIONS_SEARCH_DIRS"] = os.pathsep.join(
                    [os.environ["METAFLOW_EXTENSIONS_SEARCH_DIRS"], EXTENSION_DIR]
                )
        if self.use_config:
            return {**env, **self.extra_env}
        env.update(
            METAFLOW_DEFAULT_DATASTORE="local",
            METAFLOW_DEFAULT_METADATA="local",
            METAFLOW_DATASTORE_SYSROOT_LOCAL=str(self.path),
            METAFLOW_DATASTORE_SYSROOT_SPIN=str(self.path),
            METAFLOW_CLIENT_CACHE_PATH=str(self.path / "client_cache"),
            # metaflow.S3's temp dirs (metaflow.s3.*), default "." (the cwd)
            METAFLOW_TEMPDIR=str(self.tmp),
            # the Azure/GCS datastores' temp dirs, default the cwd
            METAFLOW_ARTIFACT_LOCALROOT=str(self.tmp),
        )
        if "METAFLOW_TOKEN_HOME" not in os.environ:
            # @conda/@pypi find (or install) micromamba in $METAFLOW_TOKEN_HOME or
            # $METAFLOW_HOME: keep using the user's one, shared by all tests, rather
            # than the store's empty home (its environments live in micromamba's own
            # root prefix, under the real $HOME, shared already).
            env["METAFLOW_TOKEN_HOME"] = os.path.expanduser(os.environ.get("METAFLOW_HOME", "~/.metaflowconfig"))
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
        self._queue: queue.SimpleQueue[Path | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

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


def import_metaflow() -> Any:
    """Import metaflow for the plugin, without letting its import-time warnings fail the test.

    ``import metaflow`` loads all its plugins; with PyYAML installed its vendored
    yaml imports the ``_yaml`` shim, which warns ``DeprecationWarning`` once per
    process. That warning is Metaflow's, raised on the plugin's behalf (the first
    fixture use imports metaflow): under ``filterwarnings = error`` it would
    error every test. Once imported, later imports are free and warn nothing.
    """
    import sys

    if "metaflow.plugins" in sys.modules:
        return sys.modules["metaflow"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import metaflow

        return metaflow


_lock = threading.RLock()
_providers: tuple[Any, Any] | None = None
# Store paths the routed providers may read, the current test's store first.
_roots: list[str] = []


def _routed(base: Any) -> Any:
    storage_base = base._get_storage_class()
    storage: Any = type("Routed" + storage_base.__name__, (storage_base,), {"datastore_root": None})

    class Routed(base):  # type: ignore[misc]  # base is one of Metaflow's provider classes, typed Any here
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


def _root_for(datastore_dir: str, flow_name: str | None, run_id: str | None) -> str | None:
    roots = [os.path.join(r, datastore_dir) for r in _roots]
    if flow_name and run_id:
        for root in roots:
            if os.path.isdir(os.path.join(root, flow_name, str(run_id))):
                return root
    return roots[0] if roots else None


def root_holding_run(pathspec: str) -> str | None:
    """The bound store (its path) holding the run a spin pathspec names, if any."""
    parts = pathspec.split("/")
    # run/step, run/step/task, flow/run/step, flow/run/step/task; local run ids are numeric
    candidates = [parts[1]] if len(parts) == 4 else [p for p in parts[:2] if p.isdigit()] if len(parts) > 1 else []
    for root in list(_roots):
        for run_id in candidates:
            if glob.glob(os.path.join(glob.escape(root), ".metaflow", "*", run_id)):
                return root
    return None


def import_run(run_id: str, into: Store) -> str | None:
    """Make a run of another bound store (``runner_factory``'s, say) part of ``into``; return its flow.

    ``resume`` reads its origin run from the datastore it writes to, so the
    origin must be in the test's store. The run's directory and the flow's
    content-addressed ``data`` are hard-linked (copied across filesystems):
    cheap, and the session store is left as it was. ``None`` when no other
    bound store holds ``run_id`` (or ``into`` already does).
    """
    own = os.path.join(into.datastore_dir, "*", glob.escape(str(run_id)))
    if glob.glob(own):
        return None
    for root in list(_roots):
        if os.path.realpath(root) == os.path.realpath(str(into.path)):
            continue
        for run_dir in glob.glob(os.path.join(glob.escape(root), ".metaflow", "*", glob.escape(str(run_id)))):
            flow_dir = os.path.dirname(run_dir)
            flow = os.path.basename(flow_dir)
            target = os.path.join(into.datastore_dir, flow)
            _link_tree(run_dir, os.path.join(target, str(run_id)))
            if os.path.isdir(os.path.join(flow_dir, "data")):
                _link_tree(os.path.join(flow_dir, "data"), os.path.join(target, "data"))
            return flow
    return None


def _link_tree(src: str, dst: str) -> None:
    def link(a: str, b: str) -> None:
        if os.path.exists(b):
            return
        try:
            os.link(a, b)
        except OSError:  # another filesystem, or links not allowed
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link, dirs_exist_ok=True)


def providers() -> tuple[Any, Any]:
    """The routed local and spin metadata provider classes (made once per process)."""
    global _providers
    if _providers is None:
        import_metaflow()
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


def _client_state() -> dict[tuple[Any, str], Any]:
    import_metaflow()
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
    import_metaflow()
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
    # Metaflow's FileCache.__init__ has no annotations.
    core.filecache = FileCache(cache_dir=str(store.path / "client_cache"))  # type: ignore[no-untyped-call]
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
