"""``artifact_snapshot``: Metaflow artifacts compared with snapshots kept by syrupy.

syrupy does the bookkeeping (``--snapshot-update``, ``__snapshots__/``, the
unused-snapshot report, xdist); this module adds an amber extension whose
serializer writes artifacts as readable, lossless text (:mod:`._values`), whose
comparator applies ``rtol``/``atol`` and whose diff names the artifact and the
element that changed. Large numpy/pandas values go to side files in
``__snapshot_blobs__/`` next to ``__snapshots__/`` (outside it: syrupy treats
every file in ``__snapshots__/`` as a snapshot collection); those no snapshot
refers to any more are deleted at the end of a ``--snapshot-update`` session
(:mod:`._snapshot_hooks`).

This module imports syrupy; the fixture imports it on first use.
"""

from __future__ import annotations

import operator
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syrupy.data import Snapshot, SnapshotCollection
from syrupy.extensions.amber import AmberSnapshotExtension

from . import _values, reporting
from ._snapshot_api import ArtifactSnapshot
from ._snapshot_hooks import BLOB_DIRNAME
from .errors import PytestMetaflowError

_hide = operator.methodcaller("errisinstance", AssertionError)
# Large values of the assertion in progress, by sha256: written to side files
# only when syrupy writes the snapshot (create/update), read back to compare.
# Transient (filled and emptied within one assert_match), hence a module global:
# syrupy calls the extension's classmethods, which cannot reach the fixture.
_PENDING: dict[str, _values.Large] = {}
_SHA = re.compile(r"sha256='([0-9a-f]{64})'")
_ARTIFACT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*) = ", re.MULTILINE)
_UPDATE_HINT = "run `pytest --snapshot-update` to accept the new values"


class SnapshotFormatError(PytestMetaflowError, ValueError):
    """A stored artifact snapshot cannot be read back."""


@dataclass
class Document:
    """The text of one ``assert_match``: a section per task, a line per artifact."""

    text: str
    large: dict[str, _values.Large] = field(default_factory=dict)


def graph_info(run: Any) -> dict[str, Any]:
    """The flow's graph as Metaflow stored it with the run (``_graph_info``)."""
    for step in run:
        for task in step:
            return dict(task["_graph_info"].data)
    return {}


def _end_step(run: Any) -> str:
    names = [s.id for s in reporting.steps(run)]
    try:
        end = graph_info(run).get("end_step")
    except Exception:  # runs of Metaflow versions without it
        end = None
    if end in names or "end" in names:
        return str(end or "end") if end in names else "end"
    if not names:
        raise ValueError(f"run {run.pathspec} has no steps yet")
    return str(names[-1])


def _index(task: Any) -> int | None:
    try:
        index = task.index
        return None if index is None else int(index)
    except Exception:  # tasks outside a foreach, or client versions without it
        return None


def select_tasks(result: Any, step: str | None) -> tuple[str, list[Any]]:
    """The step name and its tasks in task order (foreach index) for any accepted result."""
    _, obj = reporting.split(result)
    kind = reporting.kind(obj)
    if kind == "task":
        # From the pathspec: a spun task's Step object cannot be looked up in the spin store.
        own = obj.pathspec.split("/")[2]
        if step is not None and own != step:
            raise ValueError(f"step={step!r} given, but the task is {obj.pathspec}")
        return own, [obj]
    if kind != "run":
        raise TypeError(
            "artifact_snapshot.assert_match() takes an ExecutingRun, metaflow.Run, ExecutingTask or metaflow.Task, "
            f"got {type(result).__name__}: {result!r}"
        )
    step = step if step is not None else _end_step(obj)
    tasks = reporting.tasks(obj, step)
    if not tasks:
        raise AssertionError(f"step {step!r} of {obj.pathspec} has no task")
    indexed = [(_index(t), t) for t in tasks]
    indexed.sort(key=lambda it: (-1 if it[0] is None else it[0], int(it[1].id) if it[1].id.isdigit() else 0))
    return step, [t for _, t in indexed]


def user_artifacts(task: Any) -> dict[str, Any]:
    """The task's artifacts a step set (Metaflow's own ``_...`` and ``name`` left out), by name."""
    return {a.id: a for a in task if not a.id.startswith("_") and a.id != "name"}


def section_header(step: str, index: int | None) -> str:
    return f"[{step}]" if index is None else f"[{step}, foreach index {index}]"


def document(
    step: str,
    sections: Sequence[tuple[int | None, dict[str, Any]]],
    *,
    inline_limit: int = _values.INLINE_LIMIT,
) -> Document:
    """A document from ``(foreach index, {artifact: value})`` per task."""
    parts: list[str] = []
    large: dict[str, _values.Large] = {}
    for index, values in sections:
        lines = [section_header(step, index)]
        for name in sorted(values):
            try:
                text, found = _values.write_value(values[name], name, inline_limit)
            except _values.SnapshotValueError as e:
                raise _values.SnapshotValueError(f"artifact {name!r} of step {step!r}: {e}") from None
            large.update(found)
            lines.append(f"{name} = {text}")
        parts.append("\n".join(lines))
    return Document("\n\n".join(parts) + "\n", large)


def document_of(result: Any, step: str | None, names: Iterable[str] | None) -> tuple[str, Document]:
    if isinstance(names, str):
        raise TypeError(f"names= takes a list of artifact names, got the string {names!r}")
    step, tasks = select_tasks(result, step)
    wanted = list(names) if names is not None else None
    sections = []
    for task in tasks:
        found = user_artifacts(task)
        if not found and not list(task):
            raise AssertionError(
                f"task {task.pathspec} has no artifacts to snapshot; a spun task keeps them only with spin(..., persist=True)"
            )
        if wanted is not None:
            missing = [n for n in wanted if n not in found]
            if missing:
                raise AssertionError(
                    f"task {task.pathspec} has no artifact {', '.join(map(repr, missing))}; "
                    f"its artifacts: {', '.join(sorted(found)) or 'none'}"
                )
            found = {n: found[n] for n in wanted}
        sections.append((_index(task), {n: _data(task, n, a) for n, a in found.items()}))
    return step, document(step, sections)


def _data(task: Any, name: str, artifact: Any) -> Any:
    try:
        return artifact.data
    except (TypeError, OSError) as e:
        # Seen with spun join tasks: artifacts the step passed down stay in the
        # original run's datastore, where the spun task's client does not look.
        raise AssertionError(
            f"artifact {name!r} of task {task.pathspec} cannot be read ({type(e).__name__}: {e}); "
            "a spun task cannot read artifacts its step only passed down from the original run: "
            "pass names=[...] with the artifacts the step sets"
        ) from None


# --- reading a document back ------------------------------------------------


def split_document(text: str) -> dict[str, dict[str, str]]:
    """``{section header: {artifact: value text}}`` of a stored document."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    name: str | None = None
    for line in text.splitlines():
        if line.startswith("["):
            current = sections.setdefault(line.strip(), {})
            name = None
            continue
        m = _ARTIFACT.match(line)
        if m and current is not None:
            name = m.group(1)
            current[name] = line[m.end() :]
        elif line.strip() and current is not None and name is not None:
            current[name] += "\n" + line
    return sections


def _load_side_file(path: Path) -> Any:
    if path.suffix == ".npy":
        import numpy as np

        try:
            return np.load(path, allow_pickle=False)
        except ValueError:  # object arrays are pickled inside the .npy
            return np.load(path, allow_pickle=True)
    import pandas as pd  # type: ignore[import-untyped,unused-ignore]

    return pd.read_pickle(path)


def write_side_files(text: str, blob_dir: Path) -> None:
    """Write the side files ``text`` refers to that do not exist yet (content-addressed)."""
    for digest in _SHA.findall(text):
        large = _PENDING.get(digest)
        if large is None:
            continue
        target = blob_dir / _values.side_file_name(digest, large.kind)
        if target.exists():
            continue
        blob_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=blob_dir, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                if large.kind == "npy":
                    import numpy as np

                    np.save(f, large.value, allow_pickle=bool(large.value.dtype.hasobject))
                else:
                    import pickle

                    pickle.dump(large.value, f, protocol=4)
            os.replace(tmp, target)  # atomic: two xdist workers may write the same file
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


class ArtifactSnapshotExtension(AmberSnapshotExtension):
    """syrupy amber extension for Metaflow artifacts (see the module docstring)."""

    # Side files are written from the values in memory: write at assertion time.
    write_immediately = True

    def __init__(self) -> None:
        super().__init__()
        self.tolerance = _values.Tolerance()
        self.blob_dir: Path | None = None

    def serialize(self, data: Any, **kwargs: Any) -> str:
        if isinstance(data, Document):
            return data.text
        return super().serialize(data, **kwargs)

    def matches(self, *, serialized_data: Any, snapshot_data: Any) -> bool:
        if serialized_data == snapshot_data:
            return True
        try:
            return not self.differences(str(snapshot_data), str(serialized_data))
        except SnapshotFormatError:
            return False

    def diff_lines(self, serialized_data: Any, snapshot_data: Any) -> Iterator[str]:
        yield from self.differences(str(snapshot_data), str(serialized_data))

    @classmethod
    def write_snapshot_collection(cls, *, snapshot_collection: SnapshotCollection, name_order: Any = None) -> None:
        blob_dir = Path(snapshot_collection.location).parent.parent / BLOB_DIRNAME
        for snapshot in snapshot_collection:
            write_side_files(str(snapshot.data), blob_dir)
        super().write_snapshot_collection(snapshot_collection=snapshot_collection, name_order=name_order)

    def _load(self, call: _values.Call) -> Any:
        digest = call.get("sha256")
        pending = _PENDING.get(digest)
        if pending is not None:
            value = pending.value
        else:
            if self.blob_dir is None:
                raise SnapshotFormatError("no side-file directory known")
            path = self.blob_dir / str(call.get("file"))
            if not path.exists():
                raise SnapshotFormatError(f"side file {path} of the snapshot is missing")
            value = _load_side_file(path)
        return _values.parse(_values.full_text(value))

    def differences(self, old_text: str, new_text: str) -> list[str]:
        """Lines naming each artifact (and element) that differs; empty when they match."""
        old, new = split_document(old_text), split_document(new_text)
        out: list[str] = []
        for header in list(old) + [h for h in new if h not in old]:
            if header not in new:
                out.append(f"{header} task no longer snapshotted")
                continue
            if header not in old:
                out.append(f"{header} task not in the snapshot")
                continue
            lines: list[str] = []
            for name in list(old[header]) + [n for n in new[header] if n not in old[header]]:
                if name not in new[header]:
                    lines.append(f"{name}: in the snapshot, missing now")
                    continue
                if name not in old[header]:
                    lines.append(f"{name}: new artifact, not in the snapshot")
                    continue
                a, b = old[header][name], new[header][name]
                if a == b:
                    continue
                try:
                    found: list[str] = []
                    _values.compare(_values.parse(a), _values.parse(b), self.tolerance, name, found, self._load)
                except SyntaxError as e:
                    raise SnapshotFormatError(f"artifact {name!r} in the snapshot cannot be read: {e}") from None
                if len(found) > _values.MAX_DIFFS:
                    found = found[: _values.MAX_DIFFS] + ["... more differences"]
                lines.extend(found)
            if lines:
                out.append(f"{header}")
                out.extend("  " + line for line in lines)
        return out


def make_fixture(request: Any) -> ArtifactSnapshot:
    """The fixture's value: syrupy's ``snapshot`` with our extension."""
    if not request.config.pluginmanager.hasplugin("syrupy"):
        import pytest

        pytest.fail(
            "artifact_snapshot needs syrupy's pytest plugin, which is disabled here (-p no:syrupy?); "
            "it comes with pip install 'pytest-metaflow[snapshot]'",
            pytrace=False,
        )
    snapshot = request.getfixturevalue("snapshot")
    return ArtifactSnapshot(snapshot.use_extension(ArtifactSnapshotExtension), Path(str(request.node.path)))


# --- used by ``pytest-metaflow generate`` -------------------------------------


def write_snapshots(location: Path, entries: Sequence[tuple[str, Document]]) -> None:
    """Write ``(snapshot name, document)`` entries into the amber file ``location`` as syrupy would."""
    collection = SnapshotCollection(location=str(location))
    for name, doc in entries:
        collection.add(Snapshot(name=name, data=doc.text))
        _PENDING.update(doc.large)
    location.parent.mkdir(parents=True, exist_ok=True)
    try:
        ArtifactSnapshotExtension.write_snapshot_collection(snapshot_collection=collection)
    finally:
        for _, doc in entries:
            for digest in doc.large:
                _PENDING.pop(digest, None)
