"""Assertion helpers for Metaflow runs, with messages that make a rerun unnecessary.

Each takes an ``ExecutingRun`` (what ``runner(...).run()`` returns) or a
``metaflow.Run`` (what ``nbrun()`` returns); the log and artifact helpers also
take an ``ExecutingTask`` (what ``spin`` returns) or a ``metaflow.Task``.
"""

from __future__ import annotations

import operator
import re
from typing import Any, List, Optional, Type, Union

from . import reporting as r

__all__ = [
    "assert_run_succeeded",
    "assert_run_failed",
    "assert_log_contains",
    "assert_log_matches",
    "assert_log_not_contains",
    "assert_artifacts",
]

_hide = operator.methodcaller("errisinstance", AssertionError)
_RUN = ("run",)
_RUN_OR_TASK = ("run", "task")
_STREAMS = ("stdout", "stderr")


def assert_run_succeeded(result: Any) -> None:
    """Pass when the run finished successfully; otherwise say which step failed and why."""
    __tracebackhide__ = _hide
    r.check_type(result, _RUN, "assert_run_succeeded")
    if r.status(result) != "successful":
        raise AssertionError("expected a successful run, but " + r.describe_failure(result))


def _exception_matches(task: Any, exception: Union[str, Type[BaseException]]) -> bool:
    exc = task.exception
    if exc is None:
        return False
    if isinstance(exception, str):
        return exception in (exc.type, exc.type.rsplit(".", 1)[-1])
    return exc.type in (f"{exception.__module__}.{exception.__qualname__}", f"{exception.__module__}.{exception.__name__}")


def _error_text(task: Any) -> str:
    exc = task.exception
    parts = [r.exception_text(task)]
    if exc is not None and exc.stacktrace:
        parts.append(exc.stacktrace)
    parts.append(r.log_of(task, "stderr"))
    return "\n".join(parts)


def assert_run_failed(
    result: Any,
    *,
    step: Optional[str] = None,
    exception: Union[str, Type[BaseException], None] = None,
    match: Optional[str] = None,
) -> None:
    """Pass when the run failed (in ``step``, raising ``exception``, with ``match`` in its error text)."""
    __tracebackhide__ = _hide
    r.check_type(result, _RUN, "assert_run_failed")
    state = r.status(result)
    if state != "failed":
        raise AssertionError(f"expected the run to fail, but it is {state}: {r.split(result)[1].pathspec}")
    _, run = r.split(result)
    failed = r.failed_tasks(run)
    candidates = [t for t in failed if step is None or t.parent.id == step]
    if not candidates:
        where = ", ".join(sorted({t.parent.id for t in failed})) or "no step (the run died outside a task)"
        raise AssertionError(
            f"expected run {run.pathspec} to fail in step {step!r}, but it failed in: {where}\n"
            + r.describe_failure(result)
        )
    if exception is not None:
        wanted = exception if isinstance(exception, str) else exception.__name__
        hits = [t for t in candidates if _exception_matches(t, exception)]
        if not hits:
            found = "; ".join(f"{t.parent.id}: {r.exception_text(t)}" for t in candidates)
            raise AssertionError(f"expected the failing task to raise {wanted}, but got {found}")
        candidates = hits
    if match is not None:
        if not any(re.search(match, _error_text(t)) for t in candidates):
            texts = "\n".join(r.describe_task_failure(t) for t in candidates)
            raise AssertionError(f"regex {match!r} not found in the error text of the failing task:\n{texts}")


def _searched(result: Any, step: Optional[str], stream: str) -> tuple:
    if stream not in _STREAMS:
        raise ValueError(f"stream must be 'stdout' or 'stderr', got {stream!r}")
    tasks = r.tasks(result, step)
    text = "\n".join(r.log_of(t, stream).rstrip("\n") for t in tasks)
    executing, _ = r.split(result)
    if not text.strip() and executing is not None and step is None and r.kind(r.split(result)[1]) == "task":
        text = getattr(executing, stream)  # a spun task without persisted logs
    where = f"{stream} of step '{step}'" if step else f"{stream} of {r.split(result)[1].pathspec}"
    if len(tasks) > 1:
        where += f" ({len(tasks)} tasks)"
    return text, where


def assert_log_contains(result: Any, text: str, *, step: Optional[str] = None, stream: str = "stdout") -> None:
    """Pass when ``text`` occurs in ``stream`` of the whole run (or of every task of ``step`` together)."""
    __tracebackhide__ = _hide
    r.check_type(result, _RUN_OR_TASK, "assert_log_contains")
    log, where = _searched(result, step, stream)
    if text not in log:
        raise AssertionError(f"{text!r} not found in the {where}; it ends with:\n{r.indent(r.tail(log))}")


def assert_log_matches(result: Any, pattern: str, *, step: Optional[str] = None, stream: str = "stdout") -> None:
    """Pass when regex ``pattern`` matches somewhere in ``stream`` (``re.search``, multiline)."""
    __tracebackhide__ = _hide
    r.check_type(result, _RUN_OR_TASK, "assert_log_matches")
    log, where = _searched(result, step, stream)
    if not re.search(pattern, log, re.MULTILINE):
        raise AssertionError(f"regex {pattern!r} does not match the {where}; it ends with:\n{r.indent(r.tail(log))}")


def assert_log_not_contains(result: Any, text: str, *, step: Optional[str] = None, stream: str = "stdout") -> None:
    """Pass when ``text`` does not occur in ``stream``."""
    __tracebackhide__ = _hide
    r.check_type(result, _RUN_OR_TASK, "assert_log_not_contains")
    log, where = _searched(result, step, stream)
    if text in log:
        lines = [line for line in log.splitlines() if text in line]
        raise AssertionError(
            f"{text!r} found in the {where}, {len(lines)} line(s):\n" + r.indent("\n".join(lines[:10]))
        )


def assert_artifacts(result: Any, *, step: Optional[str] = None, **expected: Any) -> None:
    """Pass when each named artifact equals its expected value (``pytest.approx`` works).

    Artifacts are read from the run's ``end`` step, or from ``step``. When that
    step has several tasks (a foreach), the actual value is the list of the
    tasks' values in task order.
    """
    __tracebackhide__ = _hide
    r.check_type(result, _RUN_OR_TASK, "assert_artifacts")
    if not expected:
        raise TypeError("assert_artifacts() needs at least one name=expected_value")
    _, obj = r.split(result)
    tasks = r.tasks(result, step if step is not None or r.kind(obj) == "task" else "end")
    if not tasks:
        raise AssertionError(f"no task found for step {step!r} of {obj.pathspec}")
    found: List[dict] = [{a.id: a for a in t} for t in tasks]
    existing = sorted(set().union(*found) - {n for n in set().union(*found) if n.startswith("_")})
    problems = []
    for name, want in expected.items():
        missing = [t.pathspec for t, arts in zip(tasks, found) if name not in arts]
        if missing:
            problems.append(f"{name}: no such artifact in {', '.join(missing)}")
            continue
        values = [arts[name].data for arts in found]
        actual = values[0] if len(values) == 1 else values
        if not (want == actual):
            problems.append(f"{name}: expected {want!r}, got {actual!r}")
    if problems:
        where = tasks[0].pathspec if len(tasks) == 1 else f"the {len(tasks)} tasks of step '{tasks[0].parent.id}'"
        raise AssertionError(
            f"artifacts of {where} differ:\n"
            + r.indent("\n".join(problems))
            + "\n  artifacts that exist: "
            + (", ".join(existing) or "none")
        )
