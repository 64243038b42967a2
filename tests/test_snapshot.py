"""artifact_snapshot: the text format (direct tests) and the fixture on real runs (pytester)."""

from __future__ import annotations

import dataclasses
import datetime
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pytest_metaflow import _snapshot, _values


@dataclasses.dataclass
class Point:
    x: float
    y: float


class Model:
    def __init__(self) -> None:
        self.coef = [1.5, 2.5]
        self.name = "m"


def _doc(**values):
    return _snapshot.document("train", [(None, values)])


def _diff(old, new, rtol=None, atol=None):
    ext = _snapshot.ArtifactSnapshotExtension()
    ext.tolerance = _values.Tolerance(rtol, atol)
    _snapshot._PENDING.update(old.large)
    _snapshot._PENDING.update(new.large)
    try:
        return ext.differences(old.text, new.text)
    finally:
        _snapshot._PENDING.clear()


def test_values_are_readable_and_read_back_losslessly():
    values = {
        "alpha": 0.1 + 0.2,
        "n": 3,
        "flags": {"a": True, "b": None},
        "pair": (1, "x"),
        "tags": {"b", "a"},
        "blob": b"\x00\x01",
        "when": datetime.date(2024, 1, 2),
        "point": Point(1.0, 2.5),
        "weights": np.array([[1.0, 2.5], [np.nan, -np.inf]], dtype=np.float32),
        "frame": pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5]}, index=["r1", "r2"]),
        "series": pd.Series([1.0, 2.0], name="s"),
    }
    doc = _doc(**values)
    text = doc.text
    assert "alpha = 0.30000000000000004" in text
    assert "weights = ndarray(dtype='float32', shape=(2, 2), values=[[1.0, 2.5], [nan, -inf]])" in text
    assert "'a': column(dtype='int64', values=[1, 2])" in text
    assert "index=Index(dtype=" in text and "values=['r1', 'r2'])" in text  # 'object' or 'str' by pandas version
    assert "Point(x=1.0, y=2.5)" in text
    assert "tags = set(['a', 'b'])" in text
    # Every artifact parses back and equals itself exactly.
    assert _diff(doc, _doc(**values)) == []
    sections = _snapshot.split_document(text)
    assert set(sections["[train]"]) == set(values)
    for value_text in sections["[train]"].values():
        _values.parse(value_text)


def test_a_difference_names_the_artifact_and_the_element():
    old = _doc(weights=np.arange(6.0).reshape(2, 3), frame=pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5]}), n=1)
    changed = np.arange(6.0).reshape(2, 3)
    changed[1, 2] = 7.0
    new = _doc(weights=changed, frame=pd.DataFrame({"a": [1, 2], "b": [0.5, 1.75]}), n=1)
    lines = _diff(old, new)
    assert lines[0] == "[train]"
    assert "  frame['b'][1]: 1.5 -> 1.75 (diff +0.25, rel 0.167)" in lines
    assert "  weights[1][2]: 5.0 -> 7.0 (diff +2, rel 0.4)" in lines
    assert not any(line.strip().startswith("n") for line in lines)


def test_dtype_shape_and_artifact_set_changes_are_named():
    old = _doc(weights=np.zeros(3), gone=1)
    new = _doc(weights=np.zeros(3, dtype=np.int64), added=2)
    lines = _diff(old, new)
    assert "  weights.dtype: 'float64' -> 'int64'" in lines
    assert "  gone: in the snapshot, missing now" in lines
    assert "  added: new artifact, not in the snapshot" in lines


def test_floats_compare_with_rtol_and_atol():
    old, new = _doc(loss=1.0, w=np.array([1.0, 2.0])), _doc(loss=1.0 + 1e-9, w=np.array([1.0, 2.0 + 1e-9]))
    assert len(_diff(old, new)) == 3
    assert _diff(old, new, rtol=1e-6) == []
    assert _diff(old, new, atol=1e-6) == []
    assert _diff(_doc(loss=1.0), _doc(loss=1.1), rtol=1e-6) == ["[train]", "  loss: 1.0 -> 1.1 (diff +0.1, rel 0.1)"]


def test_large_arrays_are_summarised_with_a_checksum():
    big = np.linspace(0, 1, 5000)
    doc = _doc(big=big)
    assert len(doc.text) < 600
    assert "large_ndarray(" in doc.text and "shape=(5000,)" in doc.text and "sha256=" in doc.text
    assert "0.00020004000800160032," in doc.text and "max=1.0," in doc.text  # a few values, readable
    (large,) = doc.large.values()
    assert large.kind == "npy"
    other = big.copy()
    other[4321] += 1e-12
    lines = _diff(doc, _doc(big=other))
    assert lines[1].startswith("  big[4321]: ")
    assert _diff(doc, _doc(big=other), atol=1e-9) == []


def test_objects_of_user_classes_use_their_attributes():
    assert "model = test_snapshot.Model(coef=[1.5, 2.5], name='m')" in _doc(model=Model()).text.replace(
        "tests.test_snapshot", "test_snapshot"
    )


def test_values_that_cannot_be_written_are_named():
    with pytest.raises(TypeError, match=r"artifact 'fn' of step 'train': fn: cannot write a function"):
        _doc(fn=lambda: 1)
    cyclic: list = []
    cyclic.append(cyclic)
    with pytest.raises(TypeError, match=r"artifact 'loop' of step 'train': loop\[0\]: the value contains itself"):
        _doc(loop=cyclic)


SNAP_TEST = """
    import pytest

    def test_values(runner, artifact_snapshot):
        result = runner("snapshot_flow.py").run(scale={scale})
        artifact_snapshot.assert_match(result, step="start")
        artifact_snapshot.assert_match(result, step="square")
        artifact_snapshot.assert_match(result, names=["total"], rtol={rtol})
"""


@pytest.fixture
def snap_pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    # Under an outer `pytest -n 2` the inner pytest would inherit PYTEST_XDIST_WORKER, and
    # syrupy, which reads it to tell a worker, would skip its unused-snapshot report.
    for var in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(var, raising=False)
    flow = Path(__file__).parent.parent / "sample_flows" / "snapshot_flow.py"
    pytester.path.joinpath("snapshot_flow.py").write_text(flow.read_text())
    return pytester


def _write_test(pytester: pytest.Pytester, scale: float = 1.0, rtol: object = None) -> None:
    pytester.makepyfile(test_snap=textwrap.dedent(SNAP_TEST.format(scale=scale, rtol=rtol)))


def test_create_match_mismatch_update_unused(snap_pytester: pytest.Pytester) -> None:
    p = snap_pytester
    _write_test(p)
    result = p.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*no snapshot test_values[[]start[]] in __snapshots__/test_snap.ambr yet: run `pytest --snapshot-update`*"]
    )

    p.runpytest_subprocess("--snapshot-update").assert_outcomes(passed=1)
    stored = (p.path / "__snapshots__" / "test_snap.ambr").read_text()
    assert "# name: test_values[square]" in stored and "[square, foreach index 1]" in stored
    assert "frame = DataFrame(" in stored and "large_ndarray(" in stored
    (first_blob,) = (p.path / "__snapshot_blobs__").glob("*.npy")

    p.runpytest_subprocess().assert_outcomes(passed=1)

    _write_test(p, scale=2.0)  # a changed parameter: every derived value changes
    result = p.runpytest_subprocess("-n", "2")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*artifacts of step 'start' differ from snapshot test_values[[]start[]]*",
            "*  big[[]1[]]: 1.0 -> 2.0 (diff +1, rel 1)*",  # a large value: loaded from its side file
            "*  ... more differences*",
            "*  frame[[]'y'[]][[]0[]]: 1.0 -> 2.0*",
            "*  weights[[]1[]]: 1.0 -> 2.0*",
            "*run `pytest --snapshot-update` to accept the new values*",
        ]
    )
    result.stdout.no_fnmatch_line("*pytest_metaflow/_snapshot.py*")

    p.runpytest_subprocess("-n", "2", "--snapshot-update").assert_outcomes(passed=1)
    p.runpytest_subprocess("-n", "2").assert_outcomes(passed=1)
    # Content-addressed: the new value has a new side file, the replaced one's is deleted.
    (blob,) = (p.path / "__snapshot_blobs__").glob("*.npy")
    assert blob.name != first_blob.name

    # Drop one assertion: syrupy's own report names the snapshot unused and fails the run,
    # serial and under -n 2 (each worker reports what it used, the controller merges).
    p.makepyfile(test_snap=_without(SNAP_TEST.format(scale=2.0, rtol=None), 'step="square"'))
    for args in ((), ("-n", "2")):
        result = p.runpytest_subprocess(*args)
        result.stdout.fnmatch_lines(["*2 snapshots passed. 1 snapshot unused.*"])
        assert result.ret != 0, args
    # --snapshot-update deletes it, and the side files no snapshot refers to any more.
    result = p.runpytest_subprocess("-n", "2", "--snapshot-update")
    result.stdout.fnmatch_lines(["*1 unused snapshot deleted*"])
    stored = (p.path / "__snapshots__" / "test_snap.ambr").read_text()
    assert "test_values[square]" not in stored and "test_values[start]" in stored
    assert [b.name for b in (p.path / "__snapshot_blobs__").glob("*.npy")] == [blob.name]  # start's still refers to it
    assert f"file='{blob.name}'" in stored

    # The last snapshot referring to a side file goes: so does the side file (serial this time).
    p.makepyfile(test_snap=_without(SNAP_TEST.format(scale=2.0, rtol=None), 'step="square"', 'step="start"'))
    result = p.runpytest_subprocess("--snapshot-update")
    result.stdout.fnmatch_lines(["*1 unused snapshot deleted*"])
    assert not (p.path / "__snapshot_blobs__").exists()
    assert "# name: test_values[end]" in (p.path / "__snapshots__" / "test_snap.ambr").read_text()


def _without(test: str, *calls: str) -> str:
    lines = textwrap.dedent(test).splitlines(keepends=True)
    kept = [line for line in lines if not any(c in line for c in calls)]
    assert len(kept) == len(lines) - len(calls)
    return "".join(kept)


def test_tolerance_and_spun_task(snap_pytester: pytest.Pytester) -> None:
    p = snap_pytester
    p.makepyfile(
        test_spin=textwrap.dedent(
            """
            def test_spun(runner, artifact_snapshot):
                r = runner("snapshot_flow.py")
                base = r.run(scale=1.0)
                spun = r.spin(base.run["gather"].task.pathspec, persist=True)
                artifact_snapshot.assert_match(spun, names=["total"], rtol=1e-6)

            def test_spun_join_passed_down(runner, artifact_snapshot):
                r = runner("snapshot_flow.py")
                base = r.run(scale=1.0)
                spun = r.spin(base.run["gather"].task.pathspec, persist=True)
                artifact_snapshot.assert_match(spun)

            def test_not_persisted(runner, artifact_snapshot):
                r = runner("snapshot_flow.py")
                base = r.run(scale=1.0)
                spun = r.spin(base.run["end"].task.pathspec)
                artifact_snapshot.assert_match(spun)
            """
        )
    )
    result = p.runpytest_subprocess("--snapshot-update")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        ["*has no artifacts to snapshot; a spun task keeps them only with spin(..., persist=True)*"]
    )
    result.stdout.fnmatch_lines(["*a spun task cannot read artifacts its step only passed down from the original run*"])
    assert "# name: test_spun[gather]" in (p.path / "__snapshots__" / "test_spin.ambr").read_text()


def test_the_fixture_has_a_public_type_mypy_checks(pytester: pytest.Pytester) -> None:
    import subprocess
    import sys

    user_code = textwrap.dedent(
        """
        from pytest_metaflow import ArtifactSnapshot

        def test_typed(artifact_snapshot: ArtifactSnapshot) -> None:
            assert isinstance(artifact_snapshot, ArtifactSnapshot)

        def misuse(artifact_snapshot: ArtifactSnapshot) -> None:
            artifact_snapshot.assert_match(None, stepp="end")
        """
    )
    pytester.makepyfile(test_typed=user_code)
    pytester.runpytest_subprocess("-k", "typed").assert_outcomes(passed=1)
    import os

    import pytest_metaflow

    # An editable install is found through an import hook mypy does not follow: point it at the source.
    source = str(Path(pytest_metaflow.__file__).parent.parent)
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=silent", "test_typed.py"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "MYPYPATH": source},
    )
    assert 'Unexpected keyword argument "stepp" for "assert_match" of "ArtifactSnapshot"' in checked.stdout, (
        checked.stdout
    )
    written = (pytester.path / "test_typed.py").read_text().splitlines()
    misuse_line = next(i for i, line in enumerate(written, 1) if "stepp=" in line)
    errors = [line for line in checked.stdout.splitlines() if "error:" in line]
    assert errors and all(line.startswith(f"test_typed.py:{misuse_line}:") for line in errors), checked.stdout


def test_without_syrupy_the_fixture_says_what_to_install(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(artifact_snapshot):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:syrupy")
    result.assert_outcomes(errors=1)


def test_loading_the_plugin_imports_no_syrupy_numpy_or_pandas() -> None:
    import subprocess
    import sys

    code = (
        "import sys, pytest_metaflow.plugin, pytest_metaflow.generated, pytest_metaflow.cli; "
        "print(sorted(m for m in ('syrupy', 'numpy', 'pandas', 'metaflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
