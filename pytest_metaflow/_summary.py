"""What the session's flow runs cost: the terminal summary and JUnit properties.

Each test's report carries ``metaflow_runs``: plain dicts (pathspec, status,
seconds, per-step seconds), so pytest-xdist ships them from the workers to
the controller, which adds them up.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from . import reporting

RunInfo = Dict[str, Any]


def run_info(result: Any, nodeid: str) -> Optional[RunInfo]:
    """Timings of one run as Metaflow recorded them; ``None`` for anything but a run."""
    try:
        _, obj = reporting.split(result)
        if obj is None or reporting.kind(obj) != "run":
            return None
        steps: List[List[Any]] = []
        ends = []
        for step in reporting.steps(obj):
            tasks = list(step)
            finished = [t.finished_at for t in tasks if t.finished_at is not None]
            if tasks and finished:
                start = min(t.created_at for t in tasks)
                steps.append([step.id, (max(finished) - start).total_seconds(), len(tasks)])
                ends += finished
        seconds = (max(ends) - obj.created_at).total_seconds() if ends else 0.0
        return {"pathspec": obj.pathspec, "status": reporting.status(result), "seconds": seconds, "steps": steps, "test": nodeid}
    except Exception:  # a summary must never fail a test
        return None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def lines(runs: List[RunInfo], top: int) -> List[str]:
    """The summary text; ``top`` slowest runs and steps (0: all)."""
    statuses: Dict[str, int] = {}
    for run in runs:
        statuses[run["status"]] = statuses.get(run["status"], 0) + 1
    total = sum(run["seconds"] for run in runs)
    detail = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    out = [f"{_plural(len(runs), 'flow run')} ({detail}), {total:.2f}s of run time in total"]
    by_time = sorted(runs, key=lambda run: -run["seconds"])
    shown = by_time if top == 0 else by_time[:top]
    out.append(f"slowest {len(shown)} runs:" if top else "runs by duration:")
    out += [f"{run['seconds']:8.2f}s  {run['pathspec']} {run['status']}  ({run['test']})" for run in shown]
    steps = sorted(
        ((sec, f"{run['pathspec']}/{name}", n) for run in runs for name, sec, n in run["steps"]),
        key=lambda s: -s[0],
    )
    shown_steps = steps if top == 0 else steps[:top]
    out.append(f"slowest {len(shown_steps)} steps:" if top else "steps by duration:")
    out += [f"{sec:8.2f}s  {path} ({_plural(n, 'task')})" for sec, path, n in shown_steps]
    return out
