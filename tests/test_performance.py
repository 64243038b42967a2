"""What keeps suites fast: background store deletion; and the benchmark script still runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_metaflow._store import Remover

ROOT = Path(__file__).resolve().parent.parent


def test_remover_renames_at_once_and_deletes_by_close(tmp_path: Path) -> None:
    store = tmp_path / "metaflow-0"
    (store / ".metaflow" / "Flow" / "1").mkdir(parents=True)
    (store / ".metaflow" / "Flow" / "1" / "data").write_text("x")
    remover = Remover()
    remover.remove(store)
    assert not store.exists()
    remover.close()
    assert list(tmp_path.iterdir()) == []


def test_remover_close_without_work_and_missing_paths(tmp_path: Path) -> None:
    remover = Remover()
    remover.close()
    remover.remove(tmp_path / "never-made")
    remover.close()
    assert list(tmp_path.iterdir()) == []


def test_stores_are_gone_when_the_session_ends(flow_pytester: pytest.Pytester) -> None:
    flow_pytester.makepyfile(
        """
        def test_a(runner):
            assert runner("hello.py").run().status == "successful"

        def test_b(runner):
            assert runner("hello.py").run().status == "successful"
        """
    )
    basetemp = flow_pytester.path / "basetemp"
    flow_pytester.runpytest_subprocess(f"--basetemp={basetemp}").assert_outcomes(passed=2)
    assert basetemp.is_dir()
    leftovers = [p.name for p in basetemp.iterdir() if p.name.startswith(("metaflow-", ".removing-"))]
    assert leftovers == []


def test_bench_smoke_runs_a_case_and_writes_json(tmp_path: Path) -> None:
    # The full `bench/run.py --smoke` runs in .ci/run; this is its cheapest case.
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--only", "startup", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())
    assert results["errors"] == {}
    startup = results["cases"]["startup"]
    assert startup["metaflow_imported"] is False
    assert len(startup["a"]) == len(startup["b"]) == startup["n"] >= 2
    assert "pytest start-up" in proc.stdout


def test_bench_rejects_an_unknown_case(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--only", "nope", "--out", str(tmp_path / "r.json")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "unknown case(s): nope" in proc.stderr


COUNTED_FLOW = """
import os
from metaflow import FlowSpec, step

with open({marker!r}, "a") as f:  # one line per execution of this file
    f.write(f"{{os.getpid()}}\\n")


class CountedFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    CountedFlow()
"""


def test_an_unchanged_flow_file_is_not_reloaded_but_a_changed_one_is(runner, tmp_path: Path) -> None:
    marker = tmp_path / "loads"
    flow = tmp_path / "counted.py"
    flow.write_text(COUNTED_FLOW.format(marker=str(marker)))

    def loads_here() -> int:
        return marker.read_text().split().count(str(os.getpid()))

    runner(flow)
    runner(flow)
    assert loads_here() == 1
    flow.write_text(flow.read_text() + "\n# edited\n")
    runner(flow)
    assert loads_here() == 2
