"""Plot bench/run.py's results: per-run cost vs steps, and the suite comparison.

Usage::

    pip install -e ".[bench]"                       # matplotlib
    python bench/plot.py [results.json] [out.png]   # defaults: bench/results.json, docs/performance.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
ARMS = [("cli", "python flow.py run", "o"), ("plain", "plain metaflow.Runner", "s"), ("fixture", "runner fixture", "^")]


def _suite_bars(cases: dict[str, Any]) -> list[tuple]:
    bars = []
    for name, label in (("suite", "{} tests over {} flows"), ("xdist", "{} flow tests")):
        r = cases.get(name)
        if r:
            label = label.format(r["tests"], r["tests"] // 4)
            measured = r.get("measured")
            if measured:  # a case re-measured with --merge: its own sitting
                label += f"\n(n={measured['n']}, load {measured['loadavg_start'][0]:.1f})"
            bars.append((label, r["a_name"], r["median_a"], r["b_name"], r["median_b"], r["median_ratio"], name))
    return bars


def _launcher_bars(ax: Any, r: dict[str, Any]) -> None:
    """Wall and CPU per run, plain metaflow.Runner vs the fixture with the task launcher."""
    names = {"three_step.py": "3-step linear", "foreach_ten.py": "10-wide foreach"}
    flows = list(r["per_flow"])
    top = max(max(s["median_a"], s["cpu"]["median_a"]) for s in r["per_flow"].values())
    ticks, labels = [], []
    for i, flow in enumerate(flows):
        s = r["per_flow"][flow]
        for j, (what, part) in enumerate((("wall", s), ("CPU", s["cpu"]))):
            x = i * 5 + j * 2
            ax.bar(x, part["median_a"], color="tab:gray", label="plain metaflow.Runner" if i == j == 0 else None)
            ax.bar(x + 1, part["median_b"], color="tab:green", label="fixture, launcher fork" if i == j == 0 else None)
            ax.text(x + 1, part["median_b"] + top * 0.01, f"×{part['median_ratio']:.2f}", ha="center", va="bottom")
            ticks.append(x + 0.5)
            labels.append(f"{names.get(flow, flow)}\n{what}")
    ax.set_xticks(ticks, labels, fontsize=8)
    ax.set_ylabel("seconds per run (median; ×: median paired ratio)")
    m = r.get("measured", {})
    load = m.get("loadavg_start")
    end = m.get("loadavg_end")
    ax.set_title("Task launcher" + (f" (n={m.get('n')}, load {load[0]:.1f}→{end[0]:.1f})" if load and end else ""))
    ax.set_ylim(0, top * 1.2)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)


def plot(results: dict[str, Any], out: Path) -> None:
    cases = results["cases"]
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.6), gridspec_kw={"width_ratios": [1.2, 1, 1]})

    steps = cases.get("steps")
    if steps:
        for arm, label, marker in ARMS:
            left.plot(steps["steps"], steps["medians"][arm], marker=marker, label=label)
        left.set_xticks(steps["steps"], [str(k) for k in steps["steps"]])
        left.set_xlim(0, max(steps["steps"]) + 1)
        left.set_xlabel("steps in a linear flow")
        left.set_ylabel("seconds per run (median)")
        left.set_title("Cost of one run vs number of steps")
        left.set_ylim(bottom=0)
        left.grid(alpha=0.3)
        left.legend()

    launcher = cases.get("launcher")
    if launcher and launcher.get("per_flow"):
        _launcher_bars(middle, launcher)
    else:
        middle.set_axis_off()

    bars = _suite_bars(cases)
    top = max([max(b[2], b[4]) for b in bars], default=1)
    for i, (_label, _a_name, a, _b_name, b, ratio, name) in enumerate(bars):
        x = i * 3
        right.bar(x, a, color="tab:gray")
        right.bar(x + 1, b, color="tab:green")
        right.text(x, a + top * 0.01, f"{a:.1f} s", ha="center", va="bottom")
        text = f"{b:.1f} s\n" + (f"×{ratio:.2f} of naive" if name == "suite" else f"{ratio:.2f}× faster")
        right.text(x + 1, b + top * 0.01, text, ha="center", va="bottom")
    right.set_xticks(
        [t for i in range(len(bars)) for t in (i * 3, i * 3 + 1)],
        [n for bar in bars for n in (bar[1], bar[3])],
    )
    right.set_xticklabels(right.get_xticklabels(), fontsize=8)
    for i, bar in enumerate(bars):
        right.text(i * 3 + 0.5, -0.16, bar[0], ha="center", va="top", transform=right.get_xaxis_transform())
    right.set_ylabel("seconds for the whole pytest run (median)")
    right.set_title("Suites: shared runs + spin + -n 2")
    right.set_ylim(0, top * 1.25)
    right.grid(axis="y", alpha=0.3)

    m = results["machine"]
    merged = any("measured" in c for c in cases.values())
    fig.suptitle(
        f"pytest-metaflow, metaflow {m['metaflow']}: {m['nproc']} × {m['cpu']}, "
        + (
            "figures from several sittings (n and load per panel where they differ; docs/performance.md)"
            if merged
            else f"load {m['loadavg_start'][0]:.2f}→{m['loadavg_end'][0]:.2f}, n={results['n']}"
        ),
        fontsize=9,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main(argv: list[str]) -> int:
    src = Path(argv[0]) if argv else HERE / "results.json"
    out = Path(argv[1]) if len(argv) > 1 else HERE.parent / "docs" / "performance.png"
    plot(json.loads(src.read_text()), out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
