"""S3 store mode (``--metaflow-datastore``): each test's datastore under its own S3 prefix.

``local`` (default) changes nothing. ``s3-local`` puts the datastore of every
test store on the session's local S3 server (bucket ``pytest-metaflow-store``);
``s3://bucket/prefix`` on a real bucket, with the credentials of the user's
AWS setup (only the datastore roots and the temp dirs are overridden). Either
way each store gets ``<root>/<session>/<test>-<id>``; metadata stays local in
the test's store, so ``Flow(...)`` in a test sees that test's runs only.

Applied to the stores of ``metaflow_store`` (every function-scoped fixture)
and ``runner_factory`` when they are set up (``pytest_fixture_setup`` in
``_s3plugin``), through the store's ``extra_env``.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import _s3  # imported when an S3 store is made: the plugin's load needs only parse()

LOCAL = "local"
S3_LOCAL = "s3-local"
LOCAL_BUCKET = "pytest-metaflow-store"
CHOICES = f"{LOCAL}, {S3_LOCAL} or s3://BUCKET[/PREFIX]"


def parse(value: str, source: str) -> str:
    """The datastore spec, or ``ValueError`` naming ``source``."""
    value = (value or LOCAL).strip()
    if value in (LOCAL, S3_LOCAL):
        return value
    if re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?", value):
        return value.rstrip("/")
    raise ValueError(f"{source}: expected {CHOICES}, got {value!r}")


def label(nodeid: str) -> str:
    """A test id as an S3 key part: safe characters only, bounded length, unique suffix."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", nodeid.split("/")[-1]).strip("-")[-60:] or "test"
    return f"{name}-{uuid.uuid4().hex[:8]}"


class S3Store:
    """One store's S3 prefix: its environment, its client binding, its deletion."""

    def __init__(self, spec: str, session: str, name: str, store: Any, server: _s3.S3Server | None) -> None:
        base = f"s3://{LOCAL_BUCKET}" if spec == S3_LOCAL else spec
        self.root = f"{base}/{session}/{name}"
        endpoint = server.endpoint if server is not None else None
        self.endpoint = endpoint
        tmp = Path(store.tmp)
        env: dict[str, str] = {
            "METAFLOW_DATATOOLS_S3ROOT": f"{self.root}/data",
            "METAFLOW_TEMPDIR": str(tmp),
            "METAFLOW_ARTIFACT_LOCALROOT": str(tmp),
        }
        if server is not None:  # the local server: nothing of the user's AWS setup
            from . import _s3

            env = {
                **_s3.aws_env(server.endpoint, server.aws_dir),
                **_s3.metaflow_env(server.endpoint, f"{self.root}/data", tmp),
            }
        env.update(METAFLOW_DEFAULT_DATASTORE="s3", METAFLOW_DATASTORE_SYSROOT_S3=self.root)
        self.env = env
        self.tmp = tmp
        self._client: Any = None
        (Path(store.path) / "s3-root.txt").write_text(self.root + "\n")

    @property
    def client(self) -> Any:
        if self._client is None:
            if self.endpoint is not None:
                from . import _s3

                self._client = _s3.boto3_client(self.endpoint)
            else:
                import boto3  # the user's credentials and region: their bucket

                self._client = boto3.client("s3")
        return self._client

    def bucket_and_prefix(self) -> tuple[str, str]:
        bucket, _, prefix = self.root[len("s3://") :].partition("/")
        return bucket, prefix + "/"

    def create_bucket(self) -> None:
        with contextlib.suppress(self.client.exceptions.BucketAlreadyOwnedByYou):
            self.client.create_bucket(Bucket=LOCAL_BUCKET)

    def keys(self) -> list[str]:
        bucket, prefix = self.bucket_and_prefix()
        found: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            found.extend(o["Key"] for o in page.get("Contents", []))
        return found

    def delete(self) -> int:
        """Delete every object under the prefix; returns how many."""
        bucket, _ = self.bucket_and_prefix()
        keys = self.keys()
        for i in range(0, len(keys), 1000):
            chunk = [{"Key": k} for k in keys[i : i + 1000]]
            self.client.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
        return len(keys)
