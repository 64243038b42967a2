"""--metaflow-keep: the stores of failed (or all) tests survive, with a snippet that opens them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_metaflow import _kept

TESTS = """
def test_fails(runner):
    runner("failing.py").run()
    assert False, "the test failed"

def test_passes(runner):
    assert runner("hello.py").run(alpha=5).status == "successful"
"""


def test_keep_failed_keeps_only_the_failed_tests_store_and_the_snippet_opens_it(flow_pytester: pytest.Pytester) -> None:
    flow_pytester.makepyfile(TESTS)
    basetemp = flow_pytester.path / "bt"
    result = flow_pytester.runpytest_subprocess("--metaflow-keep=failed", f"--basetemp={basetemp}")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- metaflow kept store -*",
            f"store kept in {basetemp}/metaflow-kept/*snippet_opens_it.py_test_fails-*",
            "open it with the Metaflow client:",
            "    from metaflow import Flow, Run, metadata, namespace",
            '    metadata("local@*")',
            "    namespace(None)",
            '    run = Run("FailingFlow/*")  # failed',
            "*kept the Metaflow stores of 1 test(s) in *metaflow-kept",
        ]
    )
    kept = sorted((basetemp / "metaflow-kept").iterdir())
    assert len(kept) == 1 and kept[0].name.split("-")[0].endswith("snippet_opens_it.py_test_fails")
    # The snippet, pasted into a fresh interpreter, reads the run: data and logs.
    lines = result.outlines
    start = lines.index("    from metaflow import Flow, Run, metadata, namespace")
    snippet = "\n".join(line[4:] for line in lines[start : start + 4])
    check = snippet + '\nprint(run.successful, run["start"].task.stdout.strip(), run["boom"].task.exception)\n'
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env={"METAFLOW_USER": "someone", "PATH": "/usr/bin:/bin",
                              # the user's own client: keep its cache (default /tmp/metaflow_client) in tmp
                              "METAFLOW_CLIENT_CACHE_PATH": str(flow_pytester.path / "client_cache")},
                         cwd=flow_pytester.path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("False about to fail")
    assert "bad alpha 42" in out.stdout


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_keep_all_keeps_every_store(flow_pytester: pytest.Pytester, xdist: list) -> None:
    flow_pytester.makepyfile(TESTS)
    flow_pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\nasyncio_default_fixture_loop_scope = function\nmetaflow_keep = all\n")
    basetemp = flow_pytester.path / "bt"
    result = flow_pytester.runpytest_subprocess(f"--basetemp={basetemp}", *xdist)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([f"kept the Metaflow stores of 2 test(s) in {basetemp}/metaflow-kept"])
    kept = {p.name.split("-")[0]: p for p in (basetemp / "metaflow-kept").iterdir()}
    assert set(kept) == {f"test_keep_all_keeps_every_store.py_test_{n}" for n in ("fails", "passes")}
    for name, flow in (("fails", "FailingFlow"), ("passes", "HelloFlow")):
        store = kept[f"test_keep_all_keeps_every_store.py_test_{name}"]
        assert [p.name for p in (store / ".metaflow" / flow).iterdir() if p.name.isdigit()]
        assert not (store / "tmp").exists()  # scratch dirs are dropped


def test_keep_none_removes_every_store(flow_pytester: pytest.Pytester) -> None:
    flow_pytester.makepyfile(TESTS)
    basetemp = flow_pytester.path / "bt"
    result = flow_pytester.runpytest_subprocess(f"--basetemp={basetemp}")
    result.assert_outcomes(passed=1, failed=1)
    assert not (basetemp / "metaflow-kept").exists()
    assert not [p for p in basetemp.rglob(".metaflow")]
    result.stdout.no_fnmatch_line("*metaflow kept store*")


def test_keep_value_is_validated(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--metaflow-keep=some")
    result.stderr.fnmatch_lines(["*--metaflow-keep: expected one of none, failed, all, got 'some'"])
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\nmetaflow_keep = sometimes\n")
    result = pytester.runpytest()
    result.stderr.fnmatch_lines(["*ini option metaflow_keep: expected one of none, failed, all, got 'sometimes'"])


def test_session_dir_and_pruning(tmp_path: Path) -> None:
    root = tmp_path / "pytest-of-someone"
    # pytest's numbered base temp dirs: kept stores go next to them, per session.
    assert _kept.session_dir(root / "pytest-7", is_worker=False) == root / "metaflow-kept" / "pytest-7"
    assert _kept.session_dir(root / "pytest-7" / "popen-gw1", is_worker=True) == root / "metaflow-kept" / "pytest-7"
    # A --basetemp given by the user: inside it (pytest empties it each session).
    assert _kept.session_dir(tmp_path / "bt", is_worker=False) == tmp_path / "bt" / "metaflow-kept"
    for n in (1, 2, 9, 10):
        (root / "metaflow-kept" / f"pytest-{n}" / "a-test").mkdir(parents=True)
    current = root / "metaflow-kept" / "pytest-11"
    current.mkdir()
    _kept.prune(current)
    assert sorted(p.name for p in (root / "metaflow-kept").iterdir()) == ["pytest-10", "pytest-11", "pytest-9"]
