"""Benchmarks of pytest-metaflow against plain Metaflow.

Usage (from a checkout, in a venv with ``pip install -e ".[test,bench]"``)::

    python bench/run.py                  # every case, n=5 pairs; writes bench/results.json
    python bench/run.py -n 9 --out /tmp/results.json
    python bench/run.py --only runner,spin
    python bench/run.py --only launcher,xdist --merge   # re-measure two cases, keep the others
    python bench/run.py --smoke          # n=1, smallest cases, < 1 min; JSON to a temp file
    python bench/run.py --markdown       # the table in Markdown, for docs/performance.md
    python bench/plot.py                 # bench/results.json -> docs/performance.png

Every case is an interleaved A/B comparison measured in this one invocation:
pair ``i`` runs A then B, pair ``i+1`` B then A, and the table reports the
medians of A and B and the median of the per-pair ratios B/A.

Cases (``--only`` names):

``runner``
    ``runner(flow).run()`` vs ``metaflow.Runner(flow, show_output=False,
    pylint=False, env=metaflow_store.env())`` in the same pytest session, on
    the sample flows. Cost of a test = its setup + call + teardown, so the
    fixture's teardown (process scan, log moves) is counted. Target <= 1.02.
``launcher``
    The fixture with the task launcher on (``fork``, the default on Linux) vs a plain
    ``metaflow.Runner`` (fresh interpreter per task) on a 3-step linear flow and a
    10-wide foreach: wall (test durations) and CPU (user + system of the processes
    each run started) per run, paired ratios. Targets <= 0.35 (3-step wall),
    <= 0.3 (foreach wall), CPU <= 0.25.
``startup``
    Wall time of a trivial pytest session with the plugin installed but unused
    vs ``-p no:metaflow``; the test asserts metaflow is not imported.
    Target: <= 20 ms difference.
``xdist``
    Eight flow tests, serial vs ``-n 2`` (wall time). Target >= 1.8x.
``spin``
    ``spin`` of the middle step of a three-step flow vs a full run of it.
    Target <= 0.5.
``suite``
    Twelve tests over three flows written naively (one full run per test,
    serial) vs with the plugin's idioms (module-scoped shared runs through
    ``runner_factory``, ``spin`` for step tests, ``-n 2 --dist loadfile``).
    Target <= 0.4.
``suite_exec``
    The same idioms (task launcher on) vs the naive suite run with
    ``PYTEST_METAFLOW_LAUNCHER=exec`` (fresh interpreters, as before the launcher):
    what a suite gains from the idioms and the launcher together. Target <= 0.15.
``steps``
    Cost of one run of generated linear flows of 2, 4, 8 and 16 steps:
    ``python flow.py --no-pylint run`` (wall time, includes the interpreter
    start), plain Runner and the fixture (test durations). For the plot.

``--smoke`` (n=1, one flow per case, four tests where there are eight or
twelve) exists so CI can check that the script still works; it exits non-zero
when a measurement errors, never because a target was missed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SAMPLE_FLOWS = ["train_flow.py", "branch_flow.py", "foreach_flow.py"]
STEPS = [2, 4, 8, 16]
CASES = ["runner", "launcher", "startup", "xdist", "spin", "suite", "suite_exec", "steps"]
LAUNCHER_FLOWS = ["three_step.py", "foreach_ten.py"]

sys.path.insert(0, str(ROOT))
from pytest_metaflow._store import Store  # noqa: E402  (no metaflow import)

INI = "[pytest]\naddopts = -p no:cacheprovider -p no:randomly\n"
if importlib.util.find_spec("pytest_asyncio"):
    INI += "asyncio_default_fixture_loop_scope = function\n"  # silences its deprecation warning


class BenchError(RuntimeError):
    pass


# --- helpers -----------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import version

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "metaflow": version("metaflow"),
        "pytest": version("pytest"),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def summary(
    a: list[float], b: list[float], *, ratio: Callable[[float, float], float] = lambda a, b: b / a
) -> dict[str, Any]:
    ratios = [ratio(x, y) for x, y in zip(a, b)]
    return {
        "a": a,
        "b": b,
        "ratios": ratios,
        "median_a": statistics.median(a),
        "median_b": statistics.median(b),
        "median_ratio": statistics.median(ratios),
        "n": len(ratios),
    }


def pytest_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", *args]


def session_env() -> dict[str, str]:
    """This process's environment with bytecode caching on, as on a user's machine.

    ``PYTHONDONTWRITEBYTECODE`` (set by some sandboxes and CI images) makes every
    process compile the modules that have no ``.pyc`` yet from source each time: the
    plugin's and its Metaflow extension's (an editable install has none), never
    Metaflow's (pip compiled them at install), which skews every comparison.
    """
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Wall time of ``cmd``; raises BenchError with the output's tail if it fails."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env={**session_env(), **(env or {})}, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise BenchError(f"{' '.join(cmd)} failed (rc {proc.returncode}):\n{tail}")
    return elapsed


def durations(work: Path, args: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run pytest in ``work``; setup + call + teardown seconds per test id (the part in [])."""
    out = work / "durations.json"
    out.unlink(missing_ok=True)
    run_timed(pytest_cmd(*args), work, {**env, "BENCH_DURATIONS": str(out)})
    raw = json.loads(out.read_text())
    failed = [k for k, v in raw.items() if v.get("failed")]
    if failed:
        raise BenchError(f"tests failed: {failed}")
    return {
        k.split("[", 1)[1].rstrip("]") if "[" in k else k: sum(v.get(p, 0.0) for p in ("setup", "call", "teardown"))
        for k, v in raw.items()
    }


def workdir() -> Path:
    """A temp dir with the suites, the sample flows and the bench flows."""
    work = Path(tempfile.mkdtemp(prefix="pmf-bench-"))
    shutil.copytree(HERE / "suites", work, dirs_exist_ok=True)
    for flow in [*(ROOT / "sample_flows").glob("*_flow.py"), *(HERE / "flows").glob("*.py")]:
        shutil.copy(flow, work / flow.name)
    for k in STEPS:
        (work / f"linear_{k}.py").write_text(linear_flow(k))
    (work / "pytest.ini").write_text(INI)
    (work / "startup" / "pytest.ini").write_text(INI)
    return work


def linear_flow(steps: int) -> str:
    names = ["start", *[f"step_{i}" for i in range(1, steps - 1)], "end"]
    body = []
    for name, nxt in zip(names, names[1:] + [None]):
        body.append(f"    @step\n    def {name}(self):\n        self.x = {names.index(name)}\n")
        if nxt:
            body[-1] += f"        self.next(self.{nxt})\n"
    return (
        "from metaflow import FlowSpec, step\n\n\n"
        f"class Linear{steps}Flow(FlowSpec):\n" + "\n".join(body) + "\n\n"
        f'if __name__ == "__main__":\n    Linear{steps}Flow()\n'
    )


def interleave(n: int, a: Callable[[], float], b: Callable[[], float]) -> tuple[list[float], list[float]]:
    xs: list[float] = []
    ys: list[float] = []
    for i in range(n):
        if i % 2 == 0:
            xs.append(a())
            ys.append(b())
        else:
            ys.append(b())
            xs.append(a())
    return xs, ys


# --- the cases ---------------------------------------------------------------


def case_runner(work: Path, n: int, smoke: bool) -> dict[str, Any]:
    flows = SAMPLE_FLOWS[:1] if smoke else SAMPLE_FLOWS
    d = durations(work, ["test_pairs.py"], {"BENCH_FLOWS": ",".join(flows), "BENCH_N": str(n)})
    per_flow = {
        f: summary([d[f"{f}-{i}-plain"] for i in range(n)], [d[f"{f}-{i}-fixture"] for i in range(n)]) for f in flows
    }
    ratios = [r for s in per_flow.values() for r in s["ratios"]]
    res = summary([x for s in per_flow.values() for x in s["a"]], [x for s in per_flow.values() for x in s["b"]])
    res.update(
        label="fixture run / plain metaflow.Runner",
        a_name="plain Runner",
        b_name="fixture",
        per_flow=per_flow,
        target="<= 1.02",
        met=statistics.median(ratios) <= 1.02,
    )
    return res


def case_launcher(work: Path, n: int, smoke: bool) -> dict[str, Any]:
    flows = LAUNCHER_FLOWS[:1] if smoke else LAUNCHER_FLOWS
    cpu_file = work / "cpu.jsonl"
    cpu_file.unlink(missing_ok=True)
    d = durations(
        work,
        ["test_launcher_pairs.py"],
        {"BENCH_FLOWS": ",".join(flows), "BENCH_N": str(n), "BENCH_CPU": str(cpu_file)},
    )
    cpu = {e["id"]: e["cpu"] for e in map(json.loads, cpu_file.read_text().splitlines())}
    targets = {"three_step.py": 0.35, "foreach_ten.py": 0.3}
    per_flow: dict[str, Any] = {}
    for f in flows:
        wall = summary([d[f"{f}-{i}-plain"] for i in range(n)], [d[f"{f}-{i}-fixture"] for i in range(n)])
        wall["cpu"] = summary([cpu[f"{f}-{i}-plain"] for i in range(n)], [cpu[f"{f}-{i}-fixture"] for i in range(n)])
        per_flow[f] = wall
    res = summary([x for s in per_flow.values() for x in s["a"]], [x for s in per_flow.values() for x in s["b"]])
    cpu_ratio = statistics.median([r for s in per_flow.values() for r in s["cpu"]["ratios"]])
    met = all(per_flow[f]["median_ratio"] <= targets[f] for f in flows) and cpu_ratio <= 0.25
    res.update(
        label="fixture with launcher / plain metaflow.Runner (wall)",
        a_name="plain Runner",
        b_name="fixture (fork)",
        per_flow=per_flow,
        cpu_median_ratio=cpu_ratio,
        target="3-step <= 0.35, foreach <= 0.3, CPU <= 0.25",
        met=met,
    )
    return res


def case_startup(work: Path, n: int, smoke: bool) -> dict[str, Any]:
    cwd = work / "startup"
    on = lambda: run_timed(pytest_cmd("test_trivial.py"), cwd, {"BENCH_EXPECT_PLUGIN": "1"})  # noqa: E731
    off = lambda: run_timed(pytest_cmd("-p", "no:metaflow", "test_trivial.py"), cwd, {"BENCH_EXPECT_PLUGIN": "0"})  # noqa: E731
    on(), off()  # warm the disk cache
    a, b = interleave(max(2, 4 * n) if not smoke else 2, off, on)
    res = summary(a, b, ratio=lambda x, y: (y - x) * 1000)
    res.update(
        label="pytest start-up, plugin unused - `-p no:metaflow` (ms)",
        a_name="-p no:metaflow",
        b_name="plugin",
        unit_ratio="ms",
        metaflow_imported=False,
        target="<= 20 ms, metaflow not imported",
        met=res["median_ratio"] <= 20,
    )
    return res


def case_xdist(work: Path, n: int, smoke: bool) -> dict[str, Any]:
    env = {"BENCH_COUNT": "4" if smoke else "8"}
    serial = lambda: run_timed(pytest_cmd("test_eight.py"), work, env)  # noqa: E731
    parallel = lambda: run_timed(pytest_cmd("-n", "2", "test_eight.py"), work, env)  # noqa: E731
    a, b = interleave(n, serial, parallel)
    res = summary(a, b, ratio=lambda x, y: x / y)
    res.update(
        label=f"speed-up of -n 2 over serial, {env['BENCH_COUNT']} flow tests",
        a_name="serial",
        b_name="-n 2",
        unit_ratio="x",
        tests=int(env["BENCH_COUNT"]),
        target=">= 1.8x",
        met=res["median_ratio"] >= 1.8,
    )
    return res


def case_spin(work: Path, n: int, smoke: bool) -> dict[str, Any]:
    d = durations(work, ["test_spin.py"], {"BENCH_N": str(n)})
    res = summary([d[f"{i}-run"] for i in range(n)], [d[f"{i}-spin"] for i in range(n)])
    res.update(
        label="spin of one step / full run, 3-step flow",
        a_name="full run",
        b_name="spin",
        target="<= 0.5",
        met=res["median_ratio"] <= 0.5,
    )
    return res


def _suite(work: Path, n: int, smoke: bool, naive_env: dict[str, str] | None = None) -> dict[str, Any]:
    names = ["test_train.py"] if smoke else ["test_train.py", "test_branch.py", "test_foreach.py"]
    naive = lambda: run_timed(pytest_cmd(*[f"naive/{f}" for f in names]), work, naive_env)  # noqa: E731
    idiom = lambda: run_timed(pytest_cmd("-n", "2", "--dist", "loadfile", *[f"idiomatic/{f}" for f in names]), work)  # noqa: E731
    a, b = interleave(n, naive, idiom)
    res = summary(a, b)
    res.update(tests=4 * len(names), b_name="idioms")
    return res


def case_suite(work: Path, n: int, smoke: bool) -> dict[str, Any]:
    res = _suite(work, n, smoke)
    res.update(label=f"{res['tests']}-test suite: idioms / naive", a_name="naive", target="<= 0.4")
    res["met"] = res["median_ratio"] <= 0.4
    return res


def case_suite_exec(work: Path, n: int, smoke: bool) -> dict[str, Any]:
    """The same, against the naive suite with fresh interpreters (the plugin before its task launcher)."""
    res = _suite(work, n, smoke, {"PYTEST_METAFLOW_LAUNCHER": "exec"})
    res.update(
        label=f"{res['tests']}-test suite: idioms / naive with launcher=exec",
        a_name="naive, exec",
        target="<= 0.15",
    )
    res["met"] = res["median_ratio"] <= 0.15
    return res


def case_steps(work: Path, n: int, smoke: bool) -> dict[str, Any]:
    steps = STEPS[:1] if smoke else STEPS
    flows = [f"linear_{k}.py" for k in steps]
    d = durations(work, ["test_pairs.py"], {"BENCH_FLOWS": ",".join(flows), "BENCH_N": str(n)})

    def cli(flow: str) -> float:
        store = Store(Path(tempfile.mkdtemp(dir=work, prefix="cli-")))
        try:
            return run_timed([sys.executable, flow, "--no-pylint", "run"], work, store.env())
        finally:
            store.remove()

    res: dict[str, Any] = {
        "label": "seconds per run vs number of steps",
        "steps": steps,
        "cli": [],
        "plain": [],
        "fixture": [],
    }
    for _k, flow in zip(steps, flows):
        times = [cli(flow) for _ in range(n)]
        res["cli"].append(times)
        res["plain"].append([d[f"{flow}-{i}-plain"] for i in range(n)])
        res["fixture"].append([d[f"{flow}-{i}-fixture"] for i in range(n)])
    res["medians"] = {arm: [statistics.median(t) for t in res[arm]] for arm in ("cli", "plain", "fixture")}
    return res


RUNNERS = {
    "runner": case_runner,
    "launcher": case_launcher,
    "startup": case_startup,
    "xdist": case_xdist,
    "spin": case_spin,
    "suite": case_suite,
    "suite_exec": case_suite_exec,
    "steps": case_steps,
}


# --- output ------------------------------------------------------------------


def table(results: dict[str, Any], markdown: bool = False) -> str:
    rows = [("measurement", "A", "med A", "B", "med B", "median ratio", "n", "target", "met")]
    for _name, r in results["cases"].items():
        if "median_ratio" not in r:
            continue
        unit = r.get("unit_ratio", "")
        ratio = f"{r['median_ratio']:.1f} {unit}" if unit == "ms" else f"{r['median_ratio']:.3f}{unit}"
        rows.append(
            (
                r["label"],
                r["a_name"],
                f"{r['median_a']:.3f} s",
                r["b_name"],
                f"{r['median_b']:.3f} s",
                ratio,
                str(r["n"]),
                r["target"],
                "yes" if r["met"] else "NO",
            )
        )
        for flow, s in r.get("per_flow", {}).items():
            rows.append(
                (
                    f"  {flow}",
                    "",
                    f"{s['median_a']:.3f} s",
                    "",
                    f"{s['median_b']:.3f} s",
                    f"{s['median_ratio']:.3f}",
                    str(s["n"]),
                    "",
                    "",
                )
            )
            if "cpu" in s:
                c = s["cpu"]
                rows.append(
                    (
                        f"  {flow} CPU",
                        "",
                        f"{c['median_a']:.3f} s",
                        "",
                        f"{c['median_b']:.3f} s",
                        f"{c['median_ratio']:.3f}",
                        str(c["n"]),
                        "",
                        "",
                    )
                )
    steps = results["cases"].get("steps")
    if steps and "medians" in steps:
        for i, k in enumerate(steps["steps"]):
            m = {arm: steps["medians"][arm][i] for arm in ("cli", "plain", "fixture")}
            rows.append(
                (
                    f"{k}-step linear flow",
                    "flow.py run",
                    f"{m['cli']:.3f} s",
                    "Runner / fixture",
                    f"{m['plain']:.3f} / {m['fixture']:.3f} s",
                    f"{m['fixture'] / m['plain']:.3f}",
                    str(len(steps["cli"][i])),
                    "",
                    "",
                )
            )
    if markdown:
        lines = ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join([lines[0], "|" + "---|" * len(rows[0]), *lines[1:]])
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5, help="pairs per comparison (default 5; start-up uses 4n)")
    parser.add_argument("--smoke", action="store_true", help="n=1 and the smallest cases; for CI")
    parser.add_argument("--only", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write the JSON results (default bench/results.json; with --smoke a temp file)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other cases already in the output file (each case records its own date, load and n)",
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown (for docs/performance.md)")
    args = parser.parse_args(argv)
    n = 1 if args.smoke else args.n
    if args.out is None:  # a smoke run must not overwrite the published figures
        args.out = (
            Path(tempfile.gettempdir()) / "pytest-metaflow-bench-smoke.json" if args.smoke else HERE / "results.json"
        )
    only = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = set(only) - set(CASES)
    if unknown:
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}")

    results: dict[str, Any] = {"machine": machine(), "n": n, "smoke": args.smoke, "cases": {}, "errors": {}}
    results["machine"]["loadavg_start"] = os.getloadavg()
    work = workdir()
    started = time.perf_counter()
    try:
        for name in only:
            t0 = time.perf_counter()
            print(f"== {name} ...", end=" ", flush=True)
            try:
                load_start = os.getloadavg()
                results["cases"][name] = RUNNERS[name](work, n, args.smoke)
                results["cases"][name]["measured"] = {
                    "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                    "loadavg_start": load_start,
                    "loadavg_end": os.getloadavg(),
                    "n": n,
                }
                print(f"{time.perf_counter() - t0:.1f} s (load {os.getloadavg()[0]:.2f})", flush=True)
            except Exception as e:  # noqa: BLE001  (report every case, then fail)
                results["errors"][name] = f"{type(e).__name__}: {e}"
                print("ERROR\n" + results["errors"][name], flush=True)
    finally:
        if args.keep:
            print("work directory:", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["machine"]["loadavg_end"] = os.getloadavg()
    results["seconds"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.merge and args.out.exists():
        # The other cases keep their figures; the run's header is this run's.
        previous = json.loads(args.out.read_text())
        results["cases"] = {**previous.get("cases", {}), **results["cases"]}
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print()
    print(table(results, markdown=args.markdown))
    m = results["machine"]
    print(
        f"\n{m['nproc']} x {m['cpu']}; load {m['loadavg_start'][0]:.2f} -> {m['loadavg_end'][0]:.2f}; "
        f"n={n}; {results['seconds']:.0f} s; results in {args.out}"
    )
    if results["errors"]:
        print(f"errors in: {', '.join(results['errors'])}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
