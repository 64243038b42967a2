"""Fixtures and hooks of hermetic S3: ``s3_server``, ``metaflow_s3``.

Loaded with the main plugin (``pytest_plugins`` in ``plugin.py``); imports
neither boto3, moto nor metaflow until a fixture is used.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# Loading the plugin loads this module: it imports the rest when a datastore other than the
# default is asked for, or a store or a fixture of S3 is set up.
if TYPE_CHECKING:
    from . import _s3, _store

LOCAL = "local"  # _s3store.LOCAL, the default datastore (tests/test_plugin.py checks they agree)

DATASTORE_HELP = (
    "where each test's Metaflow datastore lives: local (default), s3-local (the session's "
    "local S3 server) or s3://BUCKET/PREFIX (a real bucket, your AWS credentials); "
    "metadata stays local per test"
)
WITH_HELP = (
    "add a Metaflow decorator to every step of every run, as Metaflow's --with does "
    "(e.g. kubernetes:cpu=2, batch, retry:times=1); repeatable. Remote compute needs an "
    "S3 datastore (--metaflow-datastore=s3://...) and your cluster configuration"
)
_MODE_KEY = pytest.StashKey[str]()
_WITH_KEY = pytest.StashKey[tuple[str, ...]]()
_SESSION_ID_KEY = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("metaflow", "testing Metaflow flows (pytest-metaflow)")
    group.addoption("--metaflow-datastore", metavar="SPEC", dest="metaflow_datastore", help=DATASTORE_HELP)
    parser.addini("metaflow_datastore", DATASTORE_HELP, default=LOCAL)
    group.addoption("--metaflow-with", action="append", metavar="SPEC", dest="metaflow_with", help=WITH_HELP)
    parser.addini("metaflow_with", WITH_HELP, type="args", default=[])


def _parse(value: str | None, source: str) -> str:
    if (value or LOCAL).strip() == LOCAL:
        return LOCAL  # the default: no need to import the S3 store
    from . import _s3store

    return _s3store.parse(value or LOCAL, source)


def pytest_configure(config: pytest.Config) -> None:
    value = config.getoption("metaflow_datastore")
    source = "--metaflow-datastore" if value is not None else "ini option metaflow_datastore"
    try:
        mode = _parse(value if value is not None else config.getini("metaflow_datastore"), source)
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None
    use_config = config.getoption("metaflow_use_config") or config.getini("metaflow_use_config")
    if mode != LOCAL and use_config:
        raise pytest.UsageError(f"{source}={mode} and --metaflow-use-config exclude each other")
    config.stash[_MODE_KEY] = mode
    specs = config.getoption("metaflow_with")
    where = "--metaflow-with" if specs else "ini option metaflow_with"
    specs = tuple(specs or config.getini("metaflow_with"))
    for spec in specs:
        if not spec or any(c.isspace() for c in spec):
            # Metaflow splits METAFLOW_DEFAULT_DECOSPECS on whitespace.
            raise pytest.UsageError(f"{where}: a decorator spec has no spaces (name:key=value,...), got {spec!r}")
    config.stash[_WITH_KEY] = specs
    workerinput = getattr(config, "workerinput", None)
    # One prefix per session: xdist workers share the controller's run id.
    config.stash[_SESSION_ID_KEY] = workerinput["testrunuid"][:12] if workerinput else uuid.uuid4().hex[:12]


def pytest_report_header(config: pytest.Config) -> list[str]:
    mode = config.stash.get(_MODE_KEY, LOCAL)
    lines = []
    if mode != LOCAL:
        from . import _s3store

        where = "the session's local S3 server" if mode == _s3store.S3_LOCAL else mode
        lines.append(f"metaflow: datastore on S3 ({where}), prefix per test, metadata local")
    specs = config.stash.get(_WITH_KEY, None)
    if specs:
        lines.append(f"metaflow: every run --with {' '.join(specs)}")
    return lines


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: pytest.FixtureRequest) -> Generator[None, Any, Any]:
    value = yield
    if fixturedef.argname not in ("metaflow_store", "runner_factory"):
        return value
    store = value if fixturedef.argname == "metaflow_store" else value.store
    test = request.node.nodeid if fixturedef.argname == "metaflow_store" else "session"
    from . import _remote

    # Remote jobs carry the session and the test (kubectl get jobs -l pytest-metaflow/session=...).
    store.extra_env.update(_remote.labels_env(request.config.stash[_SESSION_ID_KEY], test))
    specs = request.config.stash.get(_WITH_KEY, None)
    if specs:
        store.extra_env["METAFLOW_DEFAULT_DECOSPECS"] = " ".join(specs)
    mode = request.config.stash.get(_MODE_KEY, LOCAL)
    if mode != LOCAL:
        from . import _s3store

        name = (
            _s3store.label(request.node.nodeid) if fixturedef.argname == "metaflow_store" else _s3store.label("session")
        )
        _use_s3_store(request, store, mode, name)
    return value


_COMMON = (
    "METAFLOW_S3_ENDPOINT_URL",
    "METAFLOW_S3_RETRY_COUNT",
    "METAFLOW_S3_TRANSIENT_RETRY_COUNT",
    "METAFLOW_S3_CLIENT_RETRY_CONFIG",
    "METAFLOW_S3_WORKER_COUNT",
)
_PER_STORE = (
    "METAFLOW_DATATOOLS_S3ROOT",
    "METAFLOW_DATASTORE_SYSROOT_S3",
    "METAFLOW_TEMPDIR",
    "METAFLOW_ARTIFACT_LOCALROOT",
)
_BOUND_KEY = pytest.StashKey[bool]()
_S3_STATE_FILE = "pytest-metaflow-s3.json"  # _s3server.STATE_FILE (tests/test_plugin.py checks it)


def _bind_session(config: pytest.Config, env: dict[str, str]) -> None:
    """Point this process's S3 client at the local server until the end of the session.

    Once per session, not per store: a store made while another store's binding
    is active (runner_factory first used inside a test) must not lose the
    endpoint when that test's binding is undone.
    """
    if config.stash.get(_BOUND_KEY, False):
        return
    from . import _s3

    bound = _s3.client_bound(env, None)
    bound.__enter__()
    config.stash[_BOUND_KEY] = True
    config.add_cleanup(lambda: None if bound.__exit__(None, None, None) else None)


def _use_s3_store(request: pytest.FixtureRequest, store: _store.Store, mode: str, name: str) -> None:
    from . import _s3, _s3store

    server = request.getfixturevalue("s3_server") if mode == _s3store.S3_LOCAL else None
    s3 = _s3store.S3Store(mode, request.config.stash[_SESSION_ID_KEY], name, store, server)
    endpoint = server.endpoint if server is not None else None
    if endpoint is not None:
        _bind_session(request.config, {k: v for k, v in s3.env.items() if k.startswith("AWS_") or k in _COMMON})
        s3.create_bucket()
    # This store's roots for the client in this process (S3(run=...), temp dirs).
    bound = _s3.client_bound({k: v for k, v in s3.env.items() if k in _PER_STORE}, s3.tmp)
    bound.__enter__()
    request.addfinalizer(lambda: bound.__exit__(None, None, None))
    store.extra_env.update(s3.env)
    store.s3_root = s3.root  # type: ignore[attr-defined]  # for tests and users: where the datastore is
    node = request.node

    def dispose() -> None:
        from ._settings import SESSION_KEY, kept_path

        state = request.config.stash[SESSION_KEY]
        if isinstance(node, pytest.Item) and kept_path(node, state) is not None:
            return  # kept with the store (--metaflow-keep): s3-root.txt in the store names it
        s3.delete()

    request.addfinalizer(dispose)


@pytest.fixture(scope="session")
def s3_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> _s3.S3Server:
    """The session's local S3 server (moto), started on first use, bound to 127.0.0.1.

    Shared by every xdist worker; stopped at the end of the session, and gone
    within a second if pytest is killed. ``PYTEST_METAFLOW_S3_ENDPOINT=http://127.0.0.1:PORT``
    uses a server you run instead (it must be a loopback address).
    """
    from . import _s3, _s3server

    aws_dir = tmp_path_factory.mktemp("pytest-metaflow-aws")
    endpoint = os.environ.get(_s3.ENDPOINT_VAR)
    if endpoint:
        return _s3.S3Server(_s3.check_local(endpoint, _s3.ENDPOINT_VAR), aws_dir)
    config = request.config
    info = _s3server.ensure_server(_s3.shared_dir(config, tmp_path_factory), _s3.owner_pid(config))
    return _s3.S3Server(info.endpoint, aws_dir, info.pid)


@pytest.fixture
def metaflow_s3(s3_server: _s3.S3Server, metaflow_store: _store.Store) -> Iterator[_s3.MetaflowS3]:
    """This test's own bucket on the local S3 server, for flows that read and write S3.

    Every run of the test (``runner``, ``nbrunner``, ``run_notebook``) gets the
    environment that points ``metaflow.S3`` (also ``S3(run=self)``) and boto3 at
    the server, with dummy credentials and bounded retries; so does the test
    body. ``put``/``get``/``keys`` seed inputs and read outputs. The bucket is
    deleted at teardown.
    """
    from . import _s3

    s3 = _s3.MetaflowS3(s3_server.endpoint, _s3.new_bucket_name(), metaflow_store.tmp, s3_server.aws_dir)
    with contextlib.ExitStack() as stack:
        stack.enter_context(_s3.client_bound(s3.env, metaflow_store.tmp))
        _create_bucket(s3)
        stack.callback(_delete_bucket, s3)
        metaflow_store.extra_env.update(s3.env)
        yield s3


def _create_bucket(s3: _s3.MetaflowS3) -> None:
    from botocore.exceptions import EndpointConnectionError

    from .errors import S3EndpointError

    try:
        s3.client.create_bucket(Bucket=s3.bucket)
    except EndpointConnectionError as e:
        raise S3EndpointError(f"the local S3 server at {s3.endpoint} does not answer: {e}") from None


def _delete_bucket(s3: _s3.MetaflowS3) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    from .errors import S3EndpointError

    try:
        s3.delete_bucket()
    except (BotoCoreError, ClientError) as e:
        raise S3EndpointError(f"could not delete the test's bucket {s3.root} on {s3.endpoint}: {e}") from None


def _controller_basetemp(config: pytest.Config) -> str | None:
    factory = getattr(config, "_tmp_path_factory", None)
    # Only a basetemp that exists: a session that made none started no server.
    base = getattr(factory, "_basetemp", None)
    return str(base) if base is not None else None


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """The controller stops the session's server (an xdist worker leaves it to the controller)."""
    config = session.config
    if hasattr(config, "workerinput"):
        return
    base = _controller_basetemp(config)
    # No state file, no server (_s3server.stop's own first check): most sessions never import it.
    if base is not None and (Path(base) / _S3_STATE_FILE).exists():
        from . import _s3server

        _s3server.stop(Path(base))
