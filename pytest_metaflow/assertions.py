"""Assertion helpers for Metaflow runs, with messages that make a rerun unnecessary.

Each takes an ``ExecutingRun`` (what ``runner(...).run()`` returns) or a
``metaflow.Run`` (what ``nbrun()`` returns); the log and artifact helpers also
take an ``ExecutingTask`` (what ``spin`` returns) or a ``metaflow.Task``.
"""

from __future__ import annotations

import importlib
import operator
import re
import sys
from collections.abc import Mapping
from typing import Any, Union

from . import _compare
from . import reporting as r
from ._types import RunOrTask, RunResult

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


def assert_run_succeeded(result: RunResult, /) -> None:
    """Pass when the run finished successfully; otherwise say which step failed and why."""
    __tracebackhide__ = _hide
    r.check_type(result, _RUN, "assert_run_succeeded")
    if r.status(result) != "successful":
        raise AssertionError("expected a successful run, but " + r.describe_failure(result))


def _exception_class(type_name: str) -> type | None:
    """The class a task's ``exception.type`` names (``builtins.KeyError``), when importable here."""
    module_name, _, qualname = type_name.rpartition(".")
    module = sys.modules.get(module_name or "builtins")
    if module is None and module_name and module_name != "__main__":
        try:
            module = importlib.import_module(module_name)
        except Exception:  # not importable in the test process: compare names only
            return None
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj if isinstance(obj, type) else None


_Wanted = Union[str, type[BaseException], tuple[type[BaseException], ...]]


def _exception_matches(task: Any, exception: _Wanted) -> bool:
    exc = task.exception
    if exc is None:
        return False
    if isinstance(exception, str):
        return exception in (exc.type, exc.type.rsplit(".", 1)[-1])
    wanted = exception if isinstance(exception, tuple) else (exception,)
    names = {f"{w.__module__}.{n}" for w in wanted for n in (w.__qualname__, w.__name__)}
    if exc.type in names:
        return True
    raised = _exception_class(exc.type)  # subclasses match, as with pytest.raises
    return raised is not None and issubclass(raised, wanted)


def _wanted_name(exception: _Wanted) -> str:
    if isinstance(exception, str):
        return exception
    if isinstance(exception, tuple):
        return " or ".join(e.__name__ for e in exception)
    return exception.__name__


def _error_text(task: Any) -> str:
    exc = task.exception
    parts = [r.exception_text(task)]
    if exc is not None and exc.stacktrace:
        parts.append(exc.stacktrace)
    parts.append(r.log_of(task, "stderr"))
    return "\n".join(parts)


def assert_run_failed(
    result: RunResult,
    /,
    *,
    step: str | None = None,
    exception: _Wanted | None = None,
    match: str | None = None,
) -> None:
    """Pass when the run failed (in ``step``, raising ``exception``, with ``match`` in its error text).

    Parameters
    ----------
    result : ExecutingRun or metaflow.Run
        The run.
    step : str, optional
        The step that must have failed.
    exception : type, tuple of types or str, optional
        The exception the failing task raised. A class (or tuple) also matches
        subclasses when the raised class can be imported in the test, as with
        ``pytest.raises``; a string matches the class name (``"ValueError"``)
        or the full name (``"builtins.ValueError"``).
    match : str, optional
        Regex searched (``re.search``) in the failing task's exception,
        traceback and stderr. When the run failed outside any task (the
        Metaflow runtime stopped it, e.g. too many foreach splits), it is
        searched in the runtime's output instead.
    """
    __tracebackhide__ = _hide
    r.check_type(result, _RUN, "assert_run_failed")
    if exception is not None and not isinstance(exception, (str, type, tuple)):
        raise TypeError(f"exception= takes an exception class, a tuple of them or a name, got {exception!r}")
    state = r.status(result)
    if state != "failed":
        raise AssertionError(f"expected the run to fail, but it is {state}: {r.split(result)[1].pathspec}")
    executing, run = r.split(result)
    failed = r.failed_tasks(run)
    if not failed and step is None and exception is None:
        _runtime_failure_matches(executing, run, match)
        return
    candidates = [t for t in failed if step is None or t.parent.id == step]
    if not candidates:
        where = ", ".join(sorted({t.parent.id for t in failed})) or "no step (the run died outside a task)"
        raise AssertionError(
            f"expected run {run.pathspec} to fail in step {step!r}, but it failed in: {where}\n"
            + r.describe_failure(result)
        )
    if exception is not None:
        hits = [t for t in candidates if _exception_matches(t, exception)]
        if not hits:
            found = "; ".join(f"{t.parent.id}: {r.exception_text(t)}" for t in candidates)
            raise AssertionError(f"expected the failing task to raise {_wanted_name(exception)}, but got {found}")
        candidates = hits
    if match is not None:
        if not any(re.search(match, _error_text(t)) for t in candidates):
            texts = "\n".join(r.describe_task_failure(t) for t in candidates)
            raise AssertionError(f"regex {match!r} not found in the error text of the failing task:\n{texts}")


def _runtime_failure_matches(executing: Any, run: Any, match: str | None) -> None:
    __tracebackhide__ = _hide
    if match is None:
        return
    if executing is None:
        raise AssertionError(
            f"run {run.pathspec} failed outside any task, and a metaflow.Run does not keep the runtime's "
            "output: pass the ExecutingRun that run() returned to match= on it"
        )
    output = r.runtime_output(executing)
    if not re.search(match, output, re.MULTILINE):
        raise AssertionError(
            f"regex {match!r} not found in the output of the Metaflow runtime (run {run.pathspec} failed "
            f"outside any task); it ends with:\n{r.indent(r.tail(output))}"
        )


def _searched(result: Any, step: str | None, stream: str, attempt: int | str | None) -> tuple[str, str, list[str]]:
    """The text to search, what it is (for messages), and the tasks whose log was truncated."""
    if stream not in _STREAMS:
        raise ValueError(f"stream must be 'stdout' or 'stderr', got {stream!r}")
    tasks = _attempts(r.tasks(result, step), attempt)
    logs = [(t, r.log_of(t, stream).rstrip("\n")) for t in tasks]
    text = "\n".join(log for _, log in logs)
    executing, obj = r.split(result)
    if not text.strip() and executing is not None and step is None and r.kind(obj) == "task":
        text = getattr(executing, stream)  # a spun task without persisted logs
    where = f"{stream} of step '{step}'" if step else f"{stream} of {obj.pathspec}"
    if attempt is not None:
        where += f", attempt {attempt}" if attempt != "all" else ", all attempts"
    if len(tasks) > 1:
        where += f" ({len(tasks)} {'task attempts' if attempt == 'all' else 'tasks'})"
    truncated = [t.pathspec for t, log in logs if r.TRUNCATED in log]
    return text, where, truncated


def _attempts(tasks: list[Any], attempt: int | str | None) -> list[Any]:
    """The tasks as seen at ``attempt``: None the latest, an int that one, ``"all"`` every one."""
    if attempt is None:
        return tasks
    if attempt != "all" and (isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0):
        raise TypeError(f"attempt= takes an attempt number >= 0 or 'all', got {attempt!r}")
    out = []
    for task in tasks:
        last = r.attempt_of(task)
        numbers = (
            range(last + 1) if attempt == "all" else [attempt] if isinstance(attempt, int) and attempt <= last else []
        )
        out += [r.attempt(task, n) for n in numbers]
    if not out:
        ran = ", ".join(f"{t.pathspec}: 0..{r.attempt_of(t)}" for t in tasks[:5])
        raise ValueError(f"no task ran attempt {attempt}; attempts that ran: {ran}")
    return out


def _not_found(what: str, where: str, log: str, truncated: list[str]) -> AssertionError:
    message = f"{what} the {where}; it ends with:\n{r.indent(r.tail(log))}"
    if truncated:
        message += (
            f"\nthe log of {', '.join(truncated)} was truncated: it reached Metaflow's maximum log size "
            "and the rest of the step's output was not kept, so the text may have been printed after the cut "
            "(raise it with run(max_log_size=MB); default 10)"
        )
    return AssertionError(message)


# The three assert_log_* helpers spell out the same keyword-only signature on purpose: each is
# public, and its own parameters are what help(), IDEs and mypy --strict show a user (a shared
# decorator or **kwargs would hide them). What they share is done once, in _searched/_not_found.
def assert_log_contains(
    result: RunOrTask,
    text: str,
    /,
    *,
    step: str | None = None,
    stream: str = "stdout",
    attempt: int | str | None = None,
) -> None:
    """Pass when ``text`` occurs in ``stream`` of the whole run (or of every task of ``step`` together).

    ``attempt`` picks the attempt of each task (``@retry``): ``None`` the
    latest, a number that attempt, ``"all"`` every attempt's log.
    """
    __tracebackhide__ = _hide
    r.check_type(result, _RUN_OR_TASK, "assert_log_contains")
    log, where, truncated = _searched(result, step, stream, attempt)
    if text not in log:
        raise _not_found(f"{text!r} not found in", where, log, truncated)


def assert_log_matches(
    result: RunOrTask,
    pattern: str,
    /,
    *,
    step: str | None = None,
    stream: str = "stdout",
    attempt: int | str | None = None,
) -> None:
    """Pass when regex ``pattern`` matches somewhere in ``stream`` (``re.search``, multiline); ``attempt`` as for ``assert_log_contains``."""
    __tracebackhide__ = _hide
    r.check_type(result, _RUN_OR_TASK, "assert_log_matches")
    log, where, truncated = _searched(result, step, stream, attempt)
    if not re.search(pattern, log, re.MULTILINE):
        raise _not_found(f"regex {pattern!r} does not match", where, log, truncated)


def assert_log_not_contains(
    result: RunOrTask,
    text: str,
    /,
    *,
    step: str | None = None,
    stream: str = "stdout",
    attempt: int | str | None = None,
) -> None:
    """Pass when ``text`` does not occur in ``stream``; ``attempt`` as for ``assert_log_contains``."""
    __tracebackhide__ = _hide
    r.check_type(result, _RUN_OR_TASK, "assert_log_not_contains")
    log, where, _ = _searched(result, step, stream, attempt)
    if text in log:
        lines = [line for line in log.splitlines() if text in line]
        raise AssertionError(
            f"{text!r} found in the {where}, {len(lines)} line(s):\n" + r.indent(r.tail("\n".join(lines[:10])))
        )


def assert_artifacts(
    result: RunOrTask,
    expected: Mapping[str, Any] | None = None,
    /,
    *,
    step: str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    **artifacts: Any,
) -> None:
    """Pass when each named artifact equals its expected value.

    Parameters
    ----------
    result : ExecutingRun, metaflow.Run, ExecutingTask or metaflow.Task
        Where to read the artifacts: a run's end step (the step marked
        ``@step(end=True)``, else ``end``), or ``step``'s task(s); a task itself.
    expected : Mapping[str, Any], optional
        Artifact name to expected value, positional. Needed for an artifact
        called ``step``, ``rtol`` or ``atol``; may be combined with keywords.
    step : str, optional
        Read the artifacts of this step. With several tasks (a foreach) the
        actual value is the list of the tasks' values in task order.
    rtol, atol : float, optional
        Tolerances for numbers, numpy arrays and pandas objects (also inside
        lists, tuples and dicts): ``|actual - expected| <= atol + rtol *
        |expected|``. Omitted: exact comparison (one given: the other is 0).
    **artifacts : Any
        Artifact name to expected value. ``pytest.approx`` works; numpy arrays
        and pandas objects compare with ``numpy.testing``/``pandas.testing``
        (an expected ndarray also checks dtype and shape).
    """
    __tracebackhide__ = _hide
    r.check_type(result, _RUN_OR_TASK, "assert_artifacts")
    if expected is not None and not isinstance(expected, Mapping):
        raise TypeError(f"assert_artifacts() takes a mapping of artifact name to value, got {type(expected).__name__}")
    clash = sorted(set(expected or {}) & set(artifacts))
    if clash:
        raise TypeError(f"assert_artifacts() got artifact(s) {', '.join(clash)} both in the mapping and as keywords")
    wanted = {**(expected or {}), **artifacts}
    if not wanted:
        raise TypeError("assert_artifacts() needs at least one name=expected_value (or a mapping of them)")
    tolerance = _compare.Tolerance(rtol, atol)
    executing, obj = r.split(result)
    if step is None and r.kind(obj) == "run":
        end = r.end_step(obj)
        if end not in {s.id for s in obj}:
            raise AssertionError(
                f"run {obj.pathspec} has no task of its end step '{end}' to read artifacts from "
                f"(pass step= to read another step)\n" + r.describe_failure(result)
            )
        step = end
    tasks = r.tasks(result, step)
    if not tasks:
        raise AssertionError(f"no task found for step {step!r} of {obj.pathspec}")
    found: list[dict[str, Any]] = [{a.id: a for a in t} for t in tasks]
    names = set().union(*found)
    existing = sorted(n for n in names if not n.startswith("_"))
    problems = []
    for name, want in wanted.items():
        missing = [t.pathspec for t, arts in zip(tasks, found) if name not in arts]
        if missing:
            problems.append(f"{name}: no such artifact in {', '.join(missing)}")
            continue
        values = [arts[name].data for arts in found]
        actual = values[0] if len(values) == 1 else values
        diff = _compare.difference(want, actual, tolerance)
        del values, actual  # a big artifact: drop it before loading the next
        if diff is not None:
            problems.append(f"{name}: {diff}")
    if problems:
        where = tasks[0].pathspec if len(tasks) == 1 else f"the {len(tasks)} tasks of step '{tasks[0].parent.id}'"
        raise AssertionError(
            f"artifacts of {where} differ:\n"
            + r.indent("\n".join(problems))
            + "\n  artifacts that exist: "
            + (", ".join(existing) or "none")
        )
