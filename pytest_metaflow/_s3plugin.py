"""Fixtures and hooks of hermetic S3: ``s3_server``, ``metaflow_s3``.

Loaded with the main plugin (``pytest_plugins`` in ``plugin.py``); imports
neither boto3, moto nor metaflow until a fixture is used.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Optional

import pytest

from . import _s3, _s3server, _store
from .errors import S3EndpointError



@pytest.fixture(scope="session")
def s3_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> _s3.S3Server:
    """The session's local S3 server (moto), started on first use, bound to 127.0.0.1.

    Shared by every xdist worker; stopped at the end of the session, and gone
    within a second if pytest is killed. ``PYTEST_METAFLOW_S3_ENDPOINT=http://127.0.0.1:PORT``
    uses a server you run instead (it must be a loopback address).
    """
    endpoint = os.environ.get(_s3.ENDPOINT_VAR)
    if endpoint:
        return _s3.S3Server(_s3.check_local(endpoint, _s3.ENDPOINT_VAR))
    config = request.config
    info = _s3server.ensure_server(_s3.shared_dir(config, tmp_path_factory), _s3.owner_pid(config))
    return _s3.S3Server(info.endpoint, info.pid)


@pytest.fixture
def metaflow_s3(s3_server: _s3.S3Server, metaflow_store: _store.Store) -> Iterator[_s3.MetaflowS3]:
    """This test's own bucket on the local S3 server, for flows that read and write S3.

    Every run of the test (``runner``, ``nbrunner``, ``run_notebook``) gets the
    environment that points ``metaflow.S3`` (also ``S3(run=self)``) and boto3 at
    the server, with dummy credentials and bounded retries; so does the test
    body. ``put``/``get``/``keys`` seed inputs and read outputs. The bucket is
    deleted at teardown.
    """
    s3 = _s3.MetaflowS3(s3_server.endpoint, _s3.new_bucket_name(), metaflow_store.tmp, metaflow_store.path / "aws")
    with contextlib.ExitStack() as stack:
        stack.enter_context(_s3.client_bound(s3.env, metaflow_store.tmp))
        _create_bucket(s3)
        stack.callback(_delete_bucket, s3)
        metaflow_store.extra_env.update(s3.env)
        yield s3


def _create_bucket(s3: _s3.MetaflowS3) -> None:
    from botocore.exceptions import EndpointConnectionError

    try:
        s3.client.create_bucket(Bucket=s3.bucket)
    except EndpointConnectionError as e:
        raise S3EndpointError(f"the local S3 server at {s3.endpoint} does not answer: {e}") from None


def _delete_bucket(s3: _s3.MetaflowS3) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        s3.delete_bucket()
    except (BotoCoreError, ClientError) as e:
        raise S3EndpointError(f"could not delete the test's bucket {s3.root} on {s3.endpoint}: {e}") from None


def _controller_basetemp(config: pytest.Config) -> Optional[str]:
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
    if base is not None:
        from pathlib import Path

        _s3server.stop(Path(base))
