"""What the session's flow runs cost: the terminal summary and JUnit properties.

Each test's report carries ``metaflow_runs``: plain dicts (pathspec, status,
seconds, per-step seconds), so pytest-xdist ships them from the workers to
the controller, which adds them up.
"""

from __future__ import annotations

import os
import time
from typing import Any

from . import reporting

RunInfo = dict[str, Any]


def _last_output(result: Any) -> float | None:
    """When the run's Metaflow process last wrote output (its log files' mtime), epoch seconds."""
    executing, _ = reporting.split(result)
    files = getattr(getattr(executing, "command_obj", None), "log_files", None) or {}
    times = []
    for path in files.values():
        try:
            times.append(os.path.getmtime(path))
        except (OSError, TypeError):
            pass
    return max(times) if times else None


def run_info(result: Any, nodeid: str) -> RunInfo | None:
    """Timings of one run as Metaflow recorded them; ``None`` for anything but a run.

    Failed and killed tasks have no end time in Metaflow: their steps (and the
    run) are timed to the last output of the run's process; a run that did not
    finish (killed at its timeout, interrupted) is marked unfinished.
    """
    try:
        _, obj = reporting.split(result)
        if obj is None or reporting.kind(obj) != "run":
            return None
        status = reporting.status(result)
        steps: list[list[Any]] = []
        ends = []
        open_steps = []
        for step in reporting.steps(obj):
            tasks = list(step)
            finished = [t.finished_at for t in tasks if t.finished_at is not None]
            if tasks and finished:
                start = min(t.created_at for t in tasks)
                steps.append([step.id, (max(finished) - start).total_seconds(), len(tasks)])
                ends += finished
            if tasks and len(finished) < len(tasks):
                open_steps.append((step.id, min(t.created_at for t in tasks), len(tasks)))
        finished_run = status in ("successful", "failed")
        seconds = (max(ends) - obj.created_at).total_seconds() if ends else 0.0
        if open_steps or not finished_run:
            # Failed, killed or interrupted tasks have no end time: time them to
            # the last output of the run's process (now, if it was killed and has none).
            stop = _last_output(result) or (None if finished_run else time.time())
            if stop is not None:
                seconds = max(seconds, stop - obj.created_at.timestamp())
                for name, start, n in open_steps:
                    steps = [s for s in steps if s[0] != name]
                    steps.append(
                        [name, max(0.0, stop - start.timestamp()), n, "unfinished" if not finished_run else "failed"]
                    )
        return {
            "pathspec": obj.pathspec,
            "status": status,
            "seconds": seconds,
            "steps": steps,
            "test": nodeid,
            "finished": finished_run,
        }
    except Exception:  # a summary must never fail a test
        return None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def lines(runs: list[RunInfo], top: int) -> list[str]:
    """The summary text; ``top`` slowest runs and steps (0: all)."""
    statuses: dict[str, int] = {}
    for run in runs:
        statuses[run["status"]] = statuses.get(run["status"], 0) + 1
    total = sum(run["seconds"] for run in runs)
    detail = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    out = [f"{_plural(len(runs), 'flow run')} ({detail}), {total:.2f}s of run time in total"]
    by_time = sorted(runs, key=lambda run: -run["seconds"])
    shown = by_time if top == 0 else by_time[:top]
    out.append(f"slowest {len(shown)} runs:" if top else "runs by duration:")
    out += [
        f"{run['seconds']:8.2f}s  {run['pathspec']} {run['status']}"
        + ("" if run.get("finished", True) else " (unfinished: timed to its last output)")
        + f"  ({run['test']})"
        for run in shown
    ]
    steps = sorted(
        ((step[1], f"{run['pathspec']}/{step[0]}", step[2], step[3:]) for run in runs for step in run["steps"]),
        key=lambda s: -s[0],
    )
    shown_steps = steps if top == 0 else steps[:top]
    out.append(f"slowest {len(shown_steps)} steps:" if top else "steps by duration:")
    out += [
        f"{sec:8.2f}s  {path} ({_plural(n, 'task')}{''.join(', ' + e for e in extra)})"
        for sec, path, n, extra in shown_steps
    ]
    return out
