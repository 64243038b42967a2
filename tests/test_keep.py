"""--metaflow-keep: the stores of failed (or all) tests survive, with a snippet that opens them."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
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
    out = subprocess.run(
        [sys.executable, "-c", check],
        capture_output=True,
        text=True,
        env={
            "METAFLOW_USER": "someone",
            "PATH": "/usr/bin:/bin",
            # the user's own client: keep its cache (default /tmp/metaflow_client) in tmp
            "METAFLOW_CLIENT_CACHE_PATH": str(flow_pytester.path / "client_cache"),
        },
        cwd=flow_pytester.path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("False about to fail")
    assert "bad alpha 42" in out.stdout


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_keep_all_keeps_every_store(flow_pytester: pytest.Pytester, xdist: list) -> None:
    flow_pytester.makepyfile(TESTS)
    flow_pytester.makeini(
        "[pytest]\naddopts = -p no:cacheprovider\nasyncio_default_fixture_loop_scope = function\nmetaflow_keep = all\n"
    )
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


def test_pruning_spares_live_sessions(tmp_path: Path) -> None:
    kept = tmp_path / "metaflow-kept"
    for n in (1, 2, 3, 4):
        (kept / f"pytest-{n}" / "a-test").mkdir(parents=True)
    _kept.lock(kept / "pytest-1")  # this process: alive
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (kept / "pytest-2" / f".lock-{socket.gethostname()}-{dead.stdout.strip()}").write_text("")  # a killed session
    current = kept / "pytest-5"
    _kept.prune(current)
    assert sorted(p.name for p in kept.iterdir()) == ["pytest-1", "pytest-3", "pytest-4", "pytest-5"]
    assert _kept.is_live(current) and _kept.is_live(kept / "pytest-1") and not _kept.is_live(kept / "pytest-3")


def test_a_long_session_keeps_its_stores_while_shorter_ones_prune(
    flow_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11.8: one long session and three short ones sharing pytest's temp root."""
    monkeypatch.setenv("PYTEST_DEBUG_TEMPROOT", str(flow_pytester.path / "temproot"))
    (flow_pytester.path / "temproot").mkdir()
    release = flow_pytester.path / "release"
    flow_pytester.makepyfile(
        test_long=f"""
        import os, time
        from metaflow import Run

        def test_long(runner):
            result = runner("hello.py").run()
            deadline = time.monotonic() + 300
            while not os.path.exists({str(release)!r}) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert Run(result.run.pathspec).data.x == 2  # the store is still there
        """,
        test_short="""
        def test_short(runner):
            runner("hello.py").run()
        """,
    )
    # No --basetemp (unlike runpytest_subprocess): every session gets a numbered
    # base temp dir under the shared temp root, as sessions started by hand do.
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--metaflow-keep=all"]
    long = subprocess.Popen(
        [*command, "test_long.py"], cwd=flow_pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 120
        while not list(
            (flow_pytester.path / "temproot").glob("pytest-of-*/metaflow-kept/pytest-*/*test_long*/.metaflow/HelloFlow")
        ):
            assert long.poll() is None and time.monotonic() < deadline, "the long session never ran its flow"
            time.sleep(0.2)
        for _ in range(3):
            short = subprocess.run(
                [*command, "test_short.py"], cwd=flow_pytester.path, capture_output=True, text=True, timeout=300
            )
            assert short.returncode == 0, short.stdout
        release.write_text("")
        out, _ = long.communicate(timeout=300)
    finally:
        if long.poll() is None:
            long.kill()
            long.wait()
    assert long.returncode == 0, out.decode(errors="replace")
    sessions = sorted(p.name for p in (flow_pytester.path / "temproot").glob("pytest-of-*/metaflow-kept/pytest-*"))
    # The third short session pruned all but the newest 2 others: the long one (pytest-0) was live and stays.
    assert sessions == ["pytest-0", "pytest-1", "pytest-2", "pytest-3"], sessions
