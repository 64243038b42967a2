"""What ``assert_artifacts`` costs on a big numpy artifact: wall time and peak memory.

Usage (in a venv with ``pip install -e ".[test]"``)::

    python bench/artifacts.py                 # 200 MB array, every scenario
    python bench/artifacts.py --mb 20         # smaller, quicker
    python bench/artifacts.py --only equal,approx
    python bench/artifacts.py --plugin /work/main   # measure another checkout's helpers ("before")

A flow stores one float64 array of ``--mb`` MB (``numpy.random.default_rng(0)``)
in a temporary local store. Each scenario then runs in a fresh Python process
that rebuilds the expected array (the test's own copy), loads the run with the
Metaflow client and times one call. Memory is the process's peak RSS
(``resource.getrusage``) minus its RSS just before the call, also given in
copies of the array: loading the artifact itself is one copy.

Scenarios (``--only`` names):

``load``      ``task["big"].data`` only: what reading the artifact costs, whatever compares it
``equal``     ``assert_artifacts(run, big=expected)``
``approx``    ``assert_artifacts(run, big=pytest.approx(expected))``
``rtol``      ``assert_artifacts(run, big=expected, rtol=1e-9)``
``mismatch``  one element differs: the time to an ``AssertionError`` and its first line
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

SCENARIOS = ["load", "equal", "approx", "rtol", "mismatch"]

FLOW = textwrap.dedent(
    """
    import numpy as np
    from metaflow import FlowSpec, Parameter, step


    class BigArrayFlow(FlowSpec):
        mb = Parameter("mb", default=200, type=int)

        @step
        def start(self):
            self.big = np.random.default_rng(0).random(self.mb * 1024 * 1024 // 8)
            self.next(self.end)

        @step
        def end(self):
            pass


    if __name__ == "__main__":
        BigArrayFlow()
    """
)


def store_env(root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(root),
        "METAFLOW_DEFAULT_DATASTORE": "local",
        "METAFLOW_DEFAULT_METADATA": "local",
        "METAFLOW_CLIENT_CACHE_PATH": str(root / "client_cache"),
        "METAFLOW_USER": "bench",
    }


def make_run(root: Path, mb: int) -> str:
    flow = root / "big_array_flow.py"
    flow.write_text(FLOW)
    (root / ".metaflow").mkdir(exist_ok=True)
    subprocess.run(
        [sys.executable, str(flow), "--no-pylint", "run", "--mb", str(mb)],
        cwd=root,
        env=store_env(root),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    listing = sorted((root / ".metaflow" / "BigArrayFlow").iterdir())
    run_id = [p.name for p in listing if p.name[0].isdigit()][-1]
    return f"BigArrayFlow/{run_id}"


def measure(scenario: str, pathspec: str, mb: int) -> dict[str, Any]:
    """Runs in the child process: one scenario, one call."""
    import resource

    import numpy as np
    import psutil
    import pytest
    from metaflow import Run, namespace

    from pytest_metaflow import assert_artifacts

    namespace(None)
    expected = np.random.default_rng(0).random(mb * 1024 * 1024 // 8)
    if scenario == "mismatch":
        expected[len(expected) // 2] += 1.0
    run = Run(pathspec)
    before = psutil.Process().memory_info().rss
    start = time.perf_counter()
    outcome = "passed"
    try:
        if scenario == "load":
            _ = run["end"].task["big"].data
        elif scenario == "equal" or scenario == "mismatch":
            assert_artifacts(run, big=expected)
        elif scenario == "approx":
            assert_artifacts(run, big=pytest.approx(expected))
        elif scenario == "rtol":
            assert_artifacts(run, big=expected, rtol=1e-9)
    except AssertionError as e:
        outcome = "AssertionError: " + str(e).splitlines()[1].strip()
    except Exception as e:  # "before" code may not handle arrays at all
        outcome = f"{type(e).__name__}: {str(e).splitlines()[0]}"
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KB on Linux
    extra = max(0, peak - before)
    import pytest_metaflow

    return {
        "scenario": scenario,
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak / 2**20),
        "extra_mb": round(extra / 2**20),
        "extra_copies": round(extra / (mb * 2**20), 2),
        "outcome": outcome,
        "plugin": str(Path(pytest_metaflow.__file__).parent.parent),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--plugin", help="checkout whose pytest_metaflow to measure (default: the installed one)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per scenario")
    parser.add_argument("--child", nargs=2, metavar=("SCENARIO", "PATHSPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], args.child[1], args.mb)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-artifacts-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        pathspec = make_run(root, args.mb)
        print(f"# {args.mb} MB float64 array stored by {pathspec} in {time.perf_counter() - start:.1f} s")
        env = store_env(root)
        if args.plugin:
            env["PYTHONPATH"] = os.pathsep.join([args.plugin, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        rows: list[dict[str, Any]] = []
        for scenario in args.only.split(","):
            cmd = [sys.executable, __file__, "--mb", str(args.mb), "--child", scenario, pathspec]
            try:
                out = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=args.timeout)
            except subprocess.TimeoutExpired:
                rows.append({"scenario": scenario, "outcome": f"killed after {args.timeout:g} s"})
                print(json.dumps(rows[-1]), flush=True)
                continue
            if out.returncode:
                sys.exit(f"{scenario} failed:\n{out.stderr}")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
        print()
        print("| scenario | wall time | peak RSS | RSS added by the call | outcome |")
        print("|---|---:|---:|---:|---|")
        for row in rows:
            if "seconds" not in row:
                print(f"| {row['scenario']} | | | | {row['outcome']} |")
                continue
            print(
                f"| {row['scenario']} | {row['seconds']:.2f} s | {row['peak_rss_mb']} MB | "
                f"{row['extra_mb']} MB ({row['extra_copies']:.2f} copies) | {row['outcome']} |"
            )


if __name__ == "__main__":
    main()
