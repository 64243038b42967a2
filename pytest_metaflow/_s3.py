"""Hermetic S3 for flows: the session's local S3 server and a bucket per test.

``s3_server`` (session) is the local moto server shared by the session (see
``_s3server``). ``metaflow_s3`` (function) gives the test its own bucket on it,
hands the environment that points Metaflow and boto3 there to every run of the
test (through the test store's ``extra_env``), and binds the S3 client of the
test body (``metaflow.S3``, boto3) to it for the test's duration.

Safety: no AWS client may exist before its endpoint, dummy credentials and
``AWS_EC2_METADATA_DISABLED`` are set — botocore's credential chain otherwise
ends with requests to the EC2 metadata address and AWS's public endpoints. An
endpoint that is not a loopback address is refused before anything uses it.

boto3 and metaflow are imported only when a fixture is used.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from .errors import S3EndpointError

ENDPOINT_VAR = "PYTEST_METAFLOW_S3_ENDPOINT"
REGION = "us-east-1"
DUMMY_KEY = "pytest-metaflow"
# Bounded retries: against a dead endpoint Metaflow's defaults retry for minutes
# (S3_RETRY_COUNT=7, S3_TRANSIENT_RETRY_COUNT=20, adaptive client retries x10).
RETRY_CONFIG = {"max_attempts": 3, "mode": "standard"}


def check_local(endpoint: str, where: str) -> str:
    """``endpoint`` if it is an http(s) URL on a loopback address, else a clear error."""
    parsed = urlparse(endpoint)
    host = parsed.hostname or ""
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if parsed.scheme not in ("http", "https") or not local or parsed.port is None:
        raise S3EndpointError(
            f"{where}: the hermetic S3 endpoint must be http(s)://127.0.0.1:PORT (a loopback address "
            f"and a port), got {endpoint!r}; nothing was sent to it"
        )
    return endpoint.rstrip("/")


def shared_dir(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temp directory every process of the session shares (the controller's basetemp)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if hasattr(config, "workerinput") else base


def owner_pid(config: pytest.Config) -> int:
    """The process whose end ends the server: the controller (an xdist worker's parent)."""
    return os.getppid() if hasattr(config, "workerinput") else os.getpid()


class S3Server:
    """The session's local S3 server (what the ``s3_server`` fixture returns).

    Attributes
    ----------
    endpoint : str
        ``http://127.0.0.1:PORT``.
    pid : int or None
        The server's process (``None`` for an endpoint given by
        ``PYTEST_METAFLOW_S3_ENDPOINT``).
    aws_dir : Path
        The AWS config and credentials files (dummy credentials) that every
        client of the server reads, instead of ``~/.aws``; they live as long as
        the session.
    """

    def __init__(self, endpoint: str, aws_dir: Path, pid: int | None = None) -> None:
        self.endpoint = endpoint
        self.aws_dir = aws_dir
        self.pid = pid

    def __repr__(self) -> str:
        return f"<S3Server {self.endpoint} pid={self.pid}>"


def aws_env(endpoint: str, aws_dir: Path) -> dict[str, str]:
    """What points boto3/botocore at ``endpoint`` with dummy credentials and nothing else.

    The config and credentials files are our own (``aws_dir``): a developer's
    ``~/.aws`` profile (SSO, ``credential_process``, a role) is never read.
    """
    aws_dir.mkdir(parents=True, exist_ok=True)
    config, credentials = aws_dir / "config", aws_dir / "credentials"
    config.write_text(f"[default]\nregion = {REGION}\n")
    credentials.write_text(f"[default]\naws_access_key_id = {DUMMY_KEY}\naws_secret_access_key = {DUMMY_KEY}\n")
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": DUMMY_KEY,
        "AWS_SECRET_ACCESS_KEY": DUMMY_KEY,
        "AWS_SESSION_TOKEN": DUMMY_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_PROFILE": "default",
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": "3",
        "AWS_RETRY_MODE": "standard",
    }


def metaflow_env(endpoint: str, datatools_root: str, tmp: Path) -> dict[str, str]:
    """What points Metaflow's S3 client (``metaflow.S3``, ``S3(run=self)``) at ``endpoint``."""
    return {
        "METAFLOW_S3_ENDPOINT_URL": endpoint,
        "METAFLOW_DATATOOLS_S3ROOT": datatools_root,
        "METAFLOW_S3_RETRY_COUNT": "1",
        "METAFLOW_S3_TRANSIENT_RETRY_COUNT": "1",
        "METAFLOW_S3_CLIENT_RETRY_CONFIG": json.dumps(RETRY_CONFIG),
        # 64 workers by default: far more processes than a test box has cores.
        "METAFLOW_S3_WORKER_COUNT": "4",
        # metaflow.S3 makes metaflow.s3.* temp dirs in the cwd by default.
        "METAFLOW_TEMPDIR": str(tmp),
        "METAFLOW_ARTIFACT_LOCALROOT": str(tmp),
    }


def boto3_client(endpoint: str) -> Any:
    """A boto3 S3 client for ``endpoint`` with dummy credentials, bounded retries, no metadata lookups."""
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")  # before botocore exists
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(aws_access_key_id=DUMMY_KEY, aws_secret_access_key=DUMMY_KEY, region_name=REGION)
    return session.client(
        "s3",
        endpoint_url=check_local(endpoint, "boto3 client"),
        config=Config(retries=dict(RETRY_CONFIG), connect_timeout=5, read_timeout=30),
    )


# Environment variable -> (metaflow_config name, type): what Metaflow read at import.
_BOUND_AT_IMPORT = {
    "METAFLOW_S3_ENDPOINT_URL": ("S3_ENDPOINT_URL", str),
    "METAFLOW_DATATOOLS_S3ROOT": ("DATATOOLS_S3ROOT", str),
    "METAFLOW_DATASTORE_SYSROOT_S3": ("DATASTORE_SYSROOT_S3", str),
    "METAFLOW_S3_RETRY_COUNT": ("S3_RETRY_COUNT", int),
    "METAFLOW_S3_TRANSIENT_RETRY_COUNT": ("S3_TRANSIENT_RETRY_COUNT", int),
    "METAFLOW_S3_CLIENT_RETRY_CONFIG": ("S3_CLIENT_RETRY_CONFIG", json.loads),
    "METAFLOW_S3_WORKER_COUNT": ("S3_WORKER_COUNT", int),
    "METAFLOW_TEMPDIR": ("TEMPDIR", str),
    "METAFLOW_ARTIFACT_LOCALROOT": ("ARTIFACT_LOCALROOT", str),
}


@contextlib.contextmanager
def client_bound(env: dict[str, str], tmp: Path | None) -> Iterator[None]:
    """Bind the S3 client of this process (test body) to ``env``; restore everything afterwards.

    Child processes read the environment; in this process Metaflow bound
    ``DATATOOLS_S3ROOT``, the endpoint, the retry counts and ``TEMPDIR`` when
    ``metaflow_config`` was imported (and copied them into the S3 modules), so
    those module attributes are set too. With a local endpoint in ``env``,
    every other ``AWS_*`` variable is removed for the duration (a developer's
    ``AWS_PROFILE`` or role must not reach the local server, nor AWS).
    """
    mp = pytest.MonkeyPatch()
    try:
        if "AWS_ENDPOINT_URL" in env:
            for name in list(os.environ):
                if name.startswith("AWS_") and name not in env:
                    mp.delenv(name)
        for name, value in env.items():
            mp.setenv(name, value)
        import metaflow.metaflow_config as cfg
        from metaflow.plugins.datastores import s3_storage
        from metaflow.plugins.datatools.s3 import s3 as s3_module
        from metaflow.plugins.datatools.s3 import s3util

        values: dict[str, Any] = {
            attr: convert(env[var])  # type: ignore[operator]
            for var, (attr, convert) in _BOUND_AT_IMPORT.items()
            if var in env
        }
        if "METAFLOW_S3_ENDPOINT_URL" in env:
            values["DATATOOLS_CLIENT_PARAMS"] = {
                **cfg.DATATOOLS_CLIENT_PARAMS,
                "endpoint_url": env["METAFLOW_S3_ENDPOINT_URL"],
            }
        for module in (cfg, s3_module, s3util, s3_storage):
            for name, value in values.items():
                if hasattr(module, name):
                    mp.setattr(module, name, value)
        if tmp is not None:
            # S3(tmproot=TEMPDIR): the default was taken when the class was defined.
            original_init = s3_module.S3.__init__

            def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
                if not args:
                    kwargs.setdefault("tmproot", str(tmp))
                original_init(self, *args, **kwargs)

            mp.setattr(s3_module.S3, "__init__", __init__)
        boto3 = __import__("sys").modules.get("boto3")
        if boto3 is not None:
            # boto3.client() reuses a default session made with the old environment.
            mp.setattr(boto3, "DEFAULT_SESSION", None)
        yield
    finally:
        mp.undo()


class MetaflowS3:
    """A test's own bucket on the local S3 server (what ``metaflow_s3`` returns).

    Every run the test starts (``runner``, ``nbrunner``, ``run_notebook``) gets
    :attr:`env`, and the test body's ``metaflow.S3`` and boto3 talk to the same
    server, so ``S3(run=result.run)`` reads what ``S3(run=self)`` wrote in a step.

    Attributes
    ----------
    endpoint : str
        The server, ``http://127.0.0.1:PORT``.
    bucket : str
        This test's bucket (empty at the start of the test, deleted after it).
    root : str
        ``s3://<bucket>``: a place for the test's input and output data.
    datatools_root : str
        ``s3://<bucket>/data``: Metaflow's ``DATATOOLS_S3ROOT``, the root of
        ``S3(run=...)``.
    env : Dict[str, str]
        The environment given to every run of the test.
    """

    def __init__(self, endpoint: str, bucket: str, tmp: Path, aws_dir: Path) -> None:
        self.endpoint = check_local(endpoint, "metaflow_s3")
        self.bucket = bucket
        self.root = f"s3://{bucket}"
        self.datatools_root = f"{self.root}/data"
        self.tmp = tmp
        self.env: dict[str, str] = {
            **aws_env(self.endpoint, aws_dir),
            **metaflow_env(self.endpoint, self.datatools_root, tmp),
        }
        self._client: Any = None

    @property
    def client(self) -> Any:
        """A boto3 S3 client for the server (dummy credentials, bounded retries)."""
        if self._client is None:
            self._client = boto3_client(self.endpoint)
        return self._client

    def url(self, key: str = "") -> str:
        """``s3://<bucket>/<key>``."""
        return f"{self.root}/{key.lstrip('/')}" if key else self.root

    def _key(self, key_or_url: str) -> tuple[str, str]:
        if key_or_url.startswith("s3://"):
            parsed = urlparse(key_or_url)
            return parsed.netloc, parsed.path.lstrip("/")
        return self.bucket, key_or_url.lstrip("/")

    def put(self, key: str, data: bytes | str | os.PathLike[str]) -> str:
        """Write an object (bytes, text, or the content of a local file); returns its ``s3://`` URL.

        ``key`` is a key in the test's bucket or a full ``s3://bucket/key`` URL
        (that bucket is created if missing, for flows with a fixed bucket name).
        """
        bucket, key = self._key(key)
        if bucket != self.bucket:
            self.create_bucket(bucket)
        if isinstance(data, str):
            body = data.encode()
        elif isinstance(data, bytes):
            body = data
        else:
            body = Path(data).read_bytes()
        self.client.put_object(Bucket=bucket, Key=key, Body=body)
        return f"s3://{bucket}/{key}"

    def get(self, key: str) -> bytes:
        """The content of an object (a key in the test's bucket or an ``s3://`` URL)."""
        bucket, key = self._key(key)
        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]
        except self.client.exceptions.NoSuchKey:
            existing = self.keys(bucket=bucket)
            raise KeyError(f"no object s3://{bucket}/{key}; the bucket holds {existing[:20]}") from None

    def keys(self, prefix: str = "", *, bucket: str | None = None) -> list[str]:
        """Every key under ``prefix`` in the test's bucket (or ``bucket``), sorted."""
        found: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket or self.bucket, Prefix=prefix):
            found.extend(obj["Key"] for obj in page.get("Contents", []))
        return sorted(found)

    def create_bucket(self, bucket: str) -> str:
        """Create ``bucket`` on the server if it does not exist; returns ``s3://<bucket>``.

        Buckets other than the test's own are shared by the session (bucket
        names are global) and deleted at the end of the session with the server.
        """
        try:
            self.client.create_bucket(Bucket=bucket)
        except (self.client.exceptions.BucketAlreadyOwnedByYou, self.client.exceptions.BucketAlreadyExists):
            pass
        return f"s3://{bucket}"

    def S3(self, **kwargs: Any) -> Any:
        """A ``metaflow.S3`` bound to the server; its temp files go to the test's store."""
        from metaflow import S3

        kwargs.setdefault("tmproot", str(self.tmp))
        return S3(**kwargs)

    def delete_bucket(self) -> int:
        """Delete every object of the test's bucket and the bucket; returns how many objects."""
        count = 0
        while True:
            listed = self.client.list_objects_v2(Bucket=self.bucket, MaxKeys=1000)
            objects = [{"Key": o["Key"]} for o in listed.get("Contents", [])]
            if not objects:
                break
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})
            count += len(objects)
        self.client.delete_bucket(Bucket=self.bucket)
        return count


def new_bucket_name() -> str:
    # S3 rules: 3-63 characters, lowercase letters, digits, hyphens.
    return "pytest-metaflow-" + uuid.uuid4().hex[:16]
