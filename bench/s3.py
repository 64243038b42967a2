"""Cost of hermetic S3: the same flow test on the local store, with ``metaflow_s3``,
and with the datastore on the local S3 server (``--metaflow-datastore=s3-local``);
the local S3 server's start time, and how long a run takes to fail against a dead
S3 endpoint (a port nothing listens on).

    python bench/s3.py [--reps N]

Each test's wall time (setup + call + teardown, from pytest's JUnit XML) is
taken in sessions that alternate between the modes; the server's start is paid
by the first S3 test of a session and reported on its own. Prints medians and
the ratios to the local store.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = """
import pytest
from pytest_metaflow import assert_artifacts

REPS = int(__import__("os").environ["BENCH_REPS"])


def test_warm_server(s3_server):
    pass  # pays the server start once, outside the measured tests


@pytest.mark.parametrize("rep", range(REPS))
@pytest.mark.parametrize("kind", ["local", "metaflow_s3"])
def test_flow(request, runner, rep, kind):
    if kind == "metaflow_s3":
        request.getfixturevalue("metaflow_s3")
    assert_artifacts(runner("foreach_flow.py").run(shards=2), grand_total=190)


def test_dead_endpoint(runner, metaflow_s3):
    import socket, time
    from pytest_metaflow import assert_run_failed

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = "http://127.0.0.1:%d" % s.getsockname()[1]  # closed again: nothing listens
    inputs = metaflow_s3.url("in")
    start = time.monotonic()
    result = runner("s3_flow.py", env={"METAFLOW_S3_ENDPOINT_URL": dead}).run(inputs=inputs)
    took = time.monotonic() - start
    assert_run_failed(result, step="start", match="Could not connect to the endpoint URL")
    with open(__import__("os").environ["BENCH_DEAD"], "a") as f:
        f.write("%.2f\\n" % took)
"""


def run_session(workdir: Path, extra: list, reps: int) -> dict:
    xml = workdir / "out.xml"
    env = {**os.environ, "BENCH_REPS": str(reps), "BENCH_DEAD": str(workdir / "dead.txt")}
    args = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        f"--junitxml={xml}",
        *extra,
        "test_bench.py",
    ]
    subprocess.run(
        args,
        cwd=workdir,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL if os.environ.get("BENCH_QUIET", "1") == "1" else None,
    )
    times: dict = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        times.setdefault(case.get("name", "").split("[")[-1].split("-")[0].rstrip("]"), []).append(
            float(case.get("time", 0))
        )
    return times


def server_start() -> float:
    sys.path.insert(0, str(ROOT))
    from pytest_metaflow import _s3server

    with tempfile.TemporaryDirectory() as d:
        start = time.monotonic()
        _s3server.ensure_server(Path(d), os.getpid())
        took = time.monotonic() - start
        _s3server.stop(Path(d))
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    opts = parser.parse_args()
    results: dict = {"local": [], "metaflow_s3": [], "s3-local store": [], "warm_server": []}
    with tempfile.TemporaryDirectory() as d:
        workdir = Path(d)
        shutil.copy(ROOT / "sample_flows" / "foreach_flow.py", workdir)
        shutil.copy(ROOT / "sample_flows" / "s3_flow.py", workdir)
        (workdir / "test_bench.py").write_text(TESTS)
        (workdir / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
        for _ in range(opts.rounds):
            times = run_session(workdir, [], opts.reps)
            print("local-store session:", times, flush=True)
            results["local"] += times.get("local", [])
            results["metaflow_s3"] += times.get("metaflow_s3", [])
            results["warm_server"] += times.get("test_warm_server", [])
            times = run_session(
                workdir, ["--metaflow-datastore=s3-local", "-k", "(local or warm) and not dead"], opts.reps
            )
            print("s3-local session:", times, flush=True)
            results["s3-local store"] += times.get("local", [])
        dead = (workdir / "dead.txt").read_text().split() if (workdir / "dead.txt").exists() else []
    starts = [server_start() for _ in range(3)]
    base = statistics.median(results["local"])
    print(f"foreach flow (shards=2) test, wall time per test, median of {len(results['local'])}:")
    for name in ("local", "metaflow_s3", "s3-local store"):
        med = statistics.median(results[name])
        print(
            f"  {name:16s} {med:6.2f} s  ({med / base:.2f}x local)   all: {', '.join(f'{t:.2f}' for t in results[name])}"
        )
    print(f"server start (ensure_server, 3 cold starts): {', '.join(f'{t:.2f}' for t in starts)} s")
    print(f"run against a dead S3 endpoint, until it failed: {', '.join(dead)} s")


if __name__ == "__main__":
    main()
