"""Turning runs into text a user can act on: failing step, exception, log tail.

Works on ``ExecutingRun``/``ExecutingTask`` and on ``metaflow.Run``/``Task``
by duck typing, so importing this module does not import metaflow.
"""

from __future__ import annotations

import re
from typing import Any, List, Optional, Tuple

TAIL_LINES = 20
# Set by the plugin from -v; full logs instead of tails when > 0.
verbosity = 0


def split(result: Any) -> Tuple[Optional[Any], Any]:
    """``(executing process or None, client object)`` for any accepted result."""
    if hasattr(result, "command_obj"):
        return result, getattr(result, "run", None) or getattr(result, "task", None)
    return None, result


def kind(obj: Any) -> str:
    return getattr(obj, "_NAME", type(obj).__name__.lower())


def check_type(result: Any, allowed: Tuple[str, ...], helper: str) -> None:
    _, obj = split(result)
    if kind(obj) not in allowed:
        raise TypeError(
            f"{helper}() takes an ExecutingRun or metaflow.Run"
            + (" (or ExecutingTask / metaflow.Task)" if "task" in allowed else "")
            + f", got {type(result).__name__}: {result!r}"
        )


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of ``text`` (all of it under ``-v``), with a note if cut."""
    all_lines = text.rstrip("\n").splitlines()
    if verbosity > 0 or len(all_lines) <= lines:
        return "\n".join(all_lines)
    return "\n".join([f"[... {len(all_lines) - lines} earlier lines; -v shows all]"] + all_lines[-lines:])


def _metaflow_dir() -> str:
    import importlib.util

    spec = importlib.util.find_spec("metaflow")  # locates the package without importing it
    locations = list(spec.submodule_search_locations or []) if spec else []
    return locations[0] if locations else "\0"


_FRAME = re.compile(r'^(\s*)File "([^"]+)", line \d+')


def hide_metaflow_frames(text: str) -> str:
    """Drop traceback frames inside the metaflow package (all kept under ``-v``)."""
    if verbosity > 0:
        return text
    mf_dir = _metaflow_dir()
    out: List[str] = []
    hidden = 0
    skip_indent: Optional[int] = None
    for line in text.splitlines():
        m = _FRAME.match(line)
        if m:
            skip_indent = len(m.group(1)) if m.group(2).startswith(mf_dir) else None
            hidden += skip_indent is not None
        elif skip_indent is not None and len(line) - len(line.lstrip()) > skip_indent:
            continue
        else:
            skip_indent = None
        if skip_indent is None:
            out.append(line)
    if hidden:
        out.append(f"[{hidden} traceback frames inside metaflow hidden; -v shows them]")
    return "\n".join(out)


def indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines()) if text else prefix + "<empty>"


def steps(run: Any) -> List[Any]:
    """The run's steps in execution order."""
    return sorted(run, key=lambda s: (s.created_at, s.id))


def tasks(result: Any, step: Optional[str] = None) -> List[Any]:
    """Tasks of a run (or of one of its steps); a task result is its own single task."""
    _, obj = split(result)
    if kind(obj) == "task":
        if step is not None and obj.parent.id != step:
            raise ValueError(f"step={step!r} given, but the task is {obj.pathspec}")
        return [obj]
    if step is not None:
        names = [s.id for s in steps(obj)]
        if step not in names:
            raise ValueError(f"run {obj.pathspec} has no step {step!r}; its steps: {', '.join(names)}")
        return sorted(obj[step], key=lambda t: int(t.id) if t.id.isdigit() else t.id)
    return [t for s in steps(obj) for t in sorted(s, key=lambda t: int(t.id) if t.id.isdigit() else t.id)]


def log_of(task: Any, stream: str) -> str:
    try:
        return getattr(task, stream) or ""
    except Exception:  # logs of a task that has not ended yet do not exist
        return ""


def status(result: Any) -> str:
    """``successful``, ``failed``, ``running`` or ``timeout``."""
    executing, obj = split(result)
    if executing is not None:
        return executing.status
    if obj.successful:
        return "successful"
    return "failed" if obj.finished or failed_tasks(obj) else "running"


def failed_tasks(obj: Any) -> List[Any]:
    """Tasks that ended without success (for a task: itself if it failed)."""
    candidates = [obj] if kind(obj) == "task" else [t for s in steps(obj) for t in s]
    return [t for t in candidates if not t.successful and (t.exception is not None or log_of(t, "stderr"))]


def exception_text(task: Any) -> str:
    exc = task.exception
    if exc is None:
        return "no exception recorded (the task was killed or died)"
    name = exc.type[len("builtins."):] if exc.type.startswith("builtins.") else exc.type
    return f"{name}: {exc.exception}"


def describe_task_failure(task: Any) -> str:
    return "\n".join(
        [
            f"step '{task.parent.id}' failed (task {task.pathspec}): {exception_text(task)}",
            f"  stderr of {task.pathspec}:",
            indent(tail(hide_metaflow_frames(log_of(task, "stderr")))),
        ]
    )


def describe_failure(result: Any) -> str:
    """Why a run failed: its failing step(s), exception and stderr tail."""
    executing, obj = split(result)
    state = status(result)
    failed = failed_tasks(obj) if obj is not None else []
    head = f"{kind(obj)} {obj.pathspec} is {state}" if obj is not None else f"run is {state}"
    parts = [head]
    parts += [describe_task_failure(t) for t in failed]
    if not failed and executing is not None:
        parts += ["  output of the Metaflow process (stderr):", indent(tail(executing.stderr))]
        parts += ["  (stdout):", indent(tail(executing.stdout))]
    return "\n".join(parts)


def describe(result: Any) -> str:
    """One entry of the report section: pathspec, status, and the failure if any."""
    try:
        if status(result) == "successful":
            _, obj = split(result)
            return f"{kind(obj)} {obj.pathspec} is successful"
        return describe_failure(result)
    except Exception as e:  # the report must never break because a store is gone
        return f"{result!r}: could not be described ({type(e).__name__}: {e})"
