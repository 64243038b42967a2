"""Stress the plugin: 100 flow runs under ``pytest -n 2`` and count what went wrong.

Mixes successful runs, failing steps, run timeouts (``@pytest.mark.metaflow(timeout=...)``),
pytest-timeouts (``signal`` and ``thread`` methods; ``thread`` kills the xdist
worker with ``os._exit``), tests with concurrent ``async_run``s in one store and
notebooks whose ``NBRunner`` runs a flow; then a second session that is killed
with SIGKILL while its flows (and a notebook's) run. Every step starts three
helpers out of reach of Metaflow's ``pkill -P``: one in its own session, one
with a replaced environment (no token), one that renames itself with
``setproctitle`` (its command line and environment block are overwritten).

Reports, all of which must be 0:

- leaked processes: processes still alive 10 s after pytest exited, counted by
  descent (this script is a child subreaper: every orphan of the sessions is
  re-parented to it), by a marker variable in the sessions' environment and by
  the session's unique flow directory in the command line;
- leftover files: anything in the sessions' private ``TMPDIR`` and ``HOME``, new
  entries in the cwd, the flows' directory and ``/tmp/metaflow_client`` (Metaflow's
  default client cache; shared with the machine's other users, so a new entry
  there is reported even if it may not be ours): everything the plugin and
  Metaflow write belongs under pytest's basetemp;
- collisions: one run id handed to two runs of the same store, or a test whose
  ``Flow(...)`` saw a run that is not its own;
- hangs: the session not finishing within its time budget, or a test ending by
  pytest-timeout that was not meant to;
- unexpected outcomes: a test whose outcome differs from the one it was written for.

Usage: ``python bench/stress.py [--runs 100] [--workers 2]``; not part of the test suite.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from pytest_metaflow import _processes  # noqa: E402  (no metaflow import)
from tests.census import Census  # noqa: E402  (no metaflow, no pytest import)

FLOWS = Path(__file__).resolve().parent.parent / "tests" / "flows"

HELPER_FLOW = """
import os, subprocess, sys, time
from metaflow import FlowSpec, Parameter, step

TITLED = "import setproctitle, time; setproctitle.setproctitle('stress-helper ' + 'x' * 2000); time.sleep(120)"

class StressFlow(FlowSpec):
    seconds = Parameter("seconds", default=0, type=int)
    fail = Parameter("fail", default=False, type=bool)

    @step
    def start(self):
        # a helper in its own session, as a step's local server would be
        quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", __file__],
                         start_new_session=True, **quiet)
        # a replaced environment: no token
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", __file__],
                         env={"PATH": os.environ.get("PATH", "")}, **quiet)
        # setproctitle overwrites argv and the environment block
        subprocess.Popen([sys.executable, "-c", TITLED], **quiet)
        time.sleep(self.seconds)
        if self.fail:
            raise ValueError("failing on purpose")
        self.x = 1
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    StressFlow()
"""

TESTS = """
import asyncio, json, os
import pytest
from metaflow import Flow
from pytest_metaflow import RunTimeoutError

FLOW = os.path.join(os.path.dirname(__file__), "{tag}", "stress.py")
LOG = os.path.join(os.path.dirname(__file__), "runs.jsonl")

def note(request, runs):
    with open(LOG, "a") as f:
        for r in runs:
            f.write(json.dumps({{"test": request.node.nodeid, "run": r.run.pathspec,
                                 "store": str(request.getfixturevalue("metaflow_store").path)}}) + "\\n")

def own_runs_only(runs):
    assert {{r.pathspec for r in Flow("StressFlow")}} == {{r.run.pathspec for r in runs}}

@pytest.mark.parametrize("i", range({success}))
def test_success(runner, request, i):
    result = runner(FLOW).run()
    note(request, [result])
    assert result.status == "successful" and result.run.data.x == 1
    own_runs_only([result])

@pytest.mark.parametrize("i", range({failing}))
def test_failing_step(runner, request, i):
    result = runner(FLOW).run(fail=True)
    note(request, [result])
    assert result.status == "failed"

@pytest.mark.parametrize("i", range({concurrent}))
def test_concurrent(runner, request, i):
    async def main():
        running = await asyncio.gather(*(runner(FLOW).async_run() for _ in range(3)))
        return await asyncio.gather(*(r.wait() for r in running))
    results = asyncio.run(main())
    note(request, results)
    assert [r.status for r in results] == ["successful"] * 3
    own_runs_only(results)

@pytest.mark.metaflow(timeout=10)
@pytest.mark.parametrize("i", range({run_timeout}))
def test_run_timeout(runner, request, i):
    with pytest.raises(RunTimeoutError, match="step 'start' was running"):
        runner(FLOW).run(seconds=300)

@pytest.mark.timeout(3, method="signal")
@pytest.mark.parametrize("i", range({timeout_signal}))
def test_pytest_timeout_signal(runner, i):
    runner(FLOW).run(seconds=300)

@pytest.mark.timeout(3, method="thread")
@pytest.mark.parametrize("i", range({timeout_thread}))
def test_pytest_timeout_thread(runner, i):
    runner(FLOW).run(seconds=300)

@pytest.mark.parametrize("i", range({notebook}))
def test_notebook(run_notebook, request, i):
    nb = run_notebook(os.path.join(os.path.dirname(__file__), "{tag}", "stress.ipynb"))
    assert "successful True" in nb.cells[1].outputs[0].text
"""


def notebook_cells(seconds: int) -> list[str]:
    """NBRunner runs the flow class of the cell it is called from: the flow's source is the cell."""
    flow = HELPER_FLOW.split("if __name__")[0]
    return [
        flow + f"\nfrom metaflow import NBRunner\nrun = NBRunner(StressFlow, pylint=False).nbrun(seconds={seconds})",
        "print('successful', run.successful)",
    ]


def write_notebook(path: Path, cells: list[str]) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, str(path))


KILLED = """
import os
FLOW = os.path.join(os.path.dirname(__file__), "{tag}", "stress.py")

def test_run(runner):
    runner(FLOW).run(seconds=300)

def test_notebook(run_notebook):
    run_notebook(os.path.join(os.path.dirname(__file__), "{tag}", "slow.ipynb"))
"""


def plan(runs: int) -> dict[str, int]:
    """Test counts adding up to ``runs`` flow runs (a concurrent test makes 3)."""
    counts = {
        "failing": runs * 15 // 100,
        "concurrent": runs * 5 // 100,  # x3 runs each
        "run_timeout": runs * 10 // 100,
        "timeout_signal": runs * 5 // 100,
        "timeout_thread": runs * 5 // 100,
        "notebook": runs * 5 // 100,
    }
    made = sum(counts.values()) + 2 * counts["concurrent"]
    counts["success"] = runs - made
    return counts


MARKER = "PMF_STRESS_MARKER"


def killed_session(work: Path, tag: str, env: dict[str, str], census: Census) -> tuple[int, float]:
    """A session killed with SIGKILL (controller and workers) while a flow and a notebook's flow run:
    ``(live processes it left, seconds until the watchdog had cleaned up)``."""
    (work / "test_killed.py").write_text(KILLED.format(tag=tag))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-n", "2", "-q", f"--basetemp={work / 'basetemp-killed'}", "test_killed.py"],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    census.protected.add(proc.pid)
    deadline = time.monotonic() + 300
    # whole command lines (the census's are cut short): a task of the flow and one of the notebook's flow
    while sum(" step start " in line for line in _processes.processes_with(tag)) < 2 and time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    time.sleep(1)
    os.killpg(proc.pid, 9)  # pytest's processes only: runs, kernels and watchdogs have sessions of their own
    proc.wait()
    start = time.monotonic()
    left = census.leftovers(20)
    return len(left), time.monotonic() - start


def expected_outcomes(name: str) -> set[str]:
    if name.startswith("test_pytest_timeout_thread"):
        return {"failed", "error"}  # the worker dies by os._exit: junit says error ("crashed")
    if name.startswith("test_pytest_timeout"):
        return {"failed"}
    return {"passed"}


def hung(name: str, text: str) -> bool:
    """A test that pytest-timeout ended without being written to (run timeouts say RunTimeoutError)."""
    return "Timeout (>" in text and "pytest-timeout" in text and not name.startswith("test_pytest_timeout")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--workers", default="2")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds before the session counts as hung")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    counts = plan(args.runs)
    work = Path(tempfile.mkdtemp(prefix="pytest-metaflow-stress-"))
    tag = f"flows-{uuid.uuid4().hex}"
    (work / tag).mkdir()
    (work / tag / "stress.py").write_text(HELPER_FLOW)
    (work / "test_stress.py").write_text(textwrap.dedent(TESTS.format(tag=tag, **counts)))
    write_notebook(work / tag / "stress.ipynb", notebook_cells(0))
    write_notebook(work / tag / "slow.ipynb", notebook_cells(300))
    (work / "pytest.ini").write_text(
        "[pytest]\naddopts = -p no:cacheprovider\nasyncio_default_fixture_loop_scope = function\n"
    )
    tmp = work / "tmpdir"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("USER", "USERNAME", "SUDO_USER", "METAFLOW_USER")}
    env["TMPDIR"] = str(tmp)
    home = work / "home"  # a private, empty HOME: anything written there is a leftover
    home.mkdir()
    env["HOME"] = str(home)
    client_cache = Path("/tmp/metaflow_client")  # Metaflow's default client cache, outside TMPDIR
    client_before = set(os.listdir(client_cache)) if client_cache.is_dir() else set()
    env[MARKER] = tag
    census = Census(tag, MARKER)  # the one census of tests/test_reliability.py
    flow_dir_before = set(os.listdir(work / tag))

    load_at_start = round(os.getloadavg()[0], 2)
    print(f"plan: {counts} in {work}", flush=True)
    start = time.monotonic()
    hung_session = False
    with open(work / "output.txt", "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "-n",
                args.workers,
                "-q",
                "--timeout=120",
                f"--basetemp={work / 'basetemp'}",
                f"--junitxml={work / 'junit.xml'}",
                "test_stress.py",
            ],
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        census.protected.add(proc.pid)
        try:
            proc.wait(timeout=args.budget)
        except subprocess.TimeoutExpired:
            hung_session = True
            os.killpg(proc.pid, 9)
            proc.wait()
    elapsed = time.monotonic() - start

    leaked = census.leftovers(10)
    census.kill_leftovers()
    killed_left, killed_settle = killed_session(work, tag, env, census)
    census.kill_leftovers()
    leftover = sorted(str(p) for p in tmp.rglob("*")) + sorted(str(p) for p in home.rglob("*"))
    # (shared with other users of the machine: a new entry there may not be ours, but is reported)
    leftover += sorted(
        str(client_cache / n)
        for n in (set(os.listdir(client_cache)) if client_cache.is_dir() else set()) - client_before
    )
    leftover += sorted(str(work / tag / n) for n in set(os.listdir(work / tag)) - flow_dir_before)
    expected_in_cwd = {
        tag,
        "tmpdir",
        "home",
        "basetemp",
        "basetemp-killed",
        "test_stress.py",
        "test_killed.py",
        "pytest.ini",
        "output.txt",
        "junit.xml",
        "runs.jsonl",
    }
    leftover += sorted(str(p) for p in work.iterdir() if p.name not in expected_in_cwd)

    outcomes: dict[str, str] = {}
    durations: dict[str, float] = {}
    if (work / "junit.xml").exists():
        for case in ET.parse(work / "junit.xml").getroot().iter("testcase"):
            name = f"{case.get('name')}"
            kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
            outcomes[name] = "failed" if "failure" in kinds else "error" if "error" in kinds else "passed"
            durations[name] = float(case.get("time") or 0)
            text = " ".join((child.get("message") or "") + (child.text or "") for child in case)
            if hung(name, text):
                outcomes[name] = "hung"
    unexpected = {n: o for n, o in outcomes.items() if o not in expected_outcomes(n) and o != "hung"}
    hangs = [n for n, o in outcomes.items() if o == "hung"] + (["<session>"] if hung_session else [])
    n_tests = sum(counts.values())
    missing = n_tests - len(outcomes)

    collisions = 0
    per_store: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    run_ids = collections.Counter()
    if (work / "runs.jsonl").exists():
        for line in (work / "runs.jsonl").read_text().splitlines():
            rec = json.loads(line)
            per_store[rec["store"]][rec["run"]] += 1
            run_ids[rec["run"]] += 1
    collisions = sum(c - 1 for store in per_store.values() for c in store.values() if c > 1)
    collisions += sum(
        1 for o in (work / "output.txt").read_text(errors="replace").splitlines() if "Metaflow issue 1237" in o
    )
    recorded = sum(run_ids.values())

    report = {
        "runs planned": args.runs,
        "load average at start (1 min)": load_at_start,
        "tests": n_tests,
        "workers": args.workers,
        "wall time (s)": round(elapsed, 1),
        "runs recorded by finishing tests": recorded,
        "distinct run ids among them": len(run_ids),
        "leaked processes": len(leaked),
        "leaked after SIGKILL of pytest": killed_left,
        "watchdog clean-up after SIGKILL (s)": round(killed_settle, 1),
        "leftover files": len(leftover),
        "collisions": collisions,
        "hangs": len(hangs),
        "unexpected outcomes": len(unexpected) + max(missing, 0),
    }
    width = max(map(len, report))
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")
    for title, items in (("leaked", leaked), ("leftover", leftover), ("hangs", hangs), ("unexpected", unexpected)):
        for item in list(items)[:20]:
            print(f"  {title}: {item}" + (f" -> {items[item]}" if isinstance(items, dict) else ""))
    bad = any(
        report[k]
        for k in (
            "leaked processes",
            "leaked after SIGKILL of pytest",
            "leftover files",
            "collisions",
            "hangs",
            "unexpected outcomes",
        )
    )
    if bad or args.keep:
        print(f"work directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
