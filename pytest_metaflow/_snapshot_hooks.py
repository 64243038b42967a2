"""Side files of ``artifact_snapshot`` that no snapshot refers to any more are deleted.

A hook module, registered by :mod:`pytest_metaflow.plugin` (``pytest_plugins``);
it imports neither syrupy nor metaflow.

Large values are kept in side files under ``__snapshot_blobs__/``, next to
``__snapshots__/`` (see :mod:`._snapshot`). A side file is content-addressed
and may be shared by several snapshots, so it is deleted only once no ``.ambr``
file refers to it, after syrupy has written and deleted snapshots under
``--snapshot-update``.

Why at session end, in the process that ends the session (the xdist
controller, or the only process): an xdist worker could delete a side file
another worker has just written but not yet referenced from its ``.ambr``; and
the extension object that deletes unused snapshots on the controller is not
always ours (an idle worker reports syrupy's default amber extension for the
same ``.ambr`` file), so a ``delete_snapshots`` override would not always run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

BLOB_DIRNAME = "__snapshot_blobs__"
FILE_FIELD = re.compile(r"file='([^']+)'")
# Only names the extension writes: never a user's file or a write in progress (.tmp-*).
BLOB_NAME = re.compile(r"[0-9a-f]{20}\.(npy|pkl)")


def prune_side_files(snapshot_dir: Path) -> list[Path]:
    """Delete the side files of ``snapshot_dir``'s test directory that no snapshot refers to.

    Parameters
    ----------
    snapshot_dir : pathlib.Path
        A ``__snapshots__`` directory; its side files are in
        ``snapshot_dir.parent / "__snapshot_blobs__"``.

    Returns
    -------
    list of pathlib.Path
        The side files deleted. The side-file directory goes too once empty.
    """
    blob_dir = snapshot_dir.parent / BLOB_DIRNAME
    if not blob_dir.is_dir():
        return []
    referenced: set[str] = set()
    if snapshot_dir.is_dir():
        for ambr in snapshot_dir.rglob("*.ambr"):
            referenced.update(FILE_FIELD.findall(ambr.read_text(encoding="utf-8", errors="replace")))
    deleted = []
    for path in blob_dir.iterdir():
        if BLOB_NAME.fullmatch(path.name) and path.name not in referenced:
            path.unlink(missing_ok=True)
            deleted.append(path)
    try:
        blob_dir.rmdir()  # only when empty
    except OSError:
        pass
    return deleted


def _snapshot_locations(config: pytest.Config) -> set[str]:
    """The snapshot files syrupy's report of this session used or found unused.

    syrupy has no public API for its report; read defensively, so that a
    change there only leaves side files behind (tests/test_snapshot.py notices).
    """
    report: Any = getattr(getattr(config, "_syrupy", None), "report", None)
    locations: set[str] = set()
    for name in ("used", "unused", "updated", "created"):
        try:
            locations.update(str(collection.location) for collection in getattr(report, name))
        except Exception:  # no report (syrupy disabled, or an early exit)
            continue
    return locations


@pytest.hookimpl(trylast=True)  # after syrupy's own sessionfinish has written and deleted snapshots
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if hasattr(config, "workerinput") or not getattr(config.option, "update_snapshots", False):
        return
    for snapshot_dir in sorted({Path(location).parent for location in _snapshot_locations(config)}):
        if (snapshot_dir.parent / BLOB_DIRNAME).is_dir():
            prune_side_files(snapshot_dir)
