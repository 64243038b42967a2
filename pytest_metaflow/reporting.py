"""Turning runs into text a user can act on: failing step, exception, log tail.

Works on ``ExecutingRun``/``ExecutingTask`` and on ``metaflow.Run``/``Task``
by duck typing, so importing this module does not import metaflow.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import FlowStartError

TAIL_LINES = 20
# Under -v a tail is this long (a failing step's log can be megabytes); -vv shows all.
VERBOSE_TAIL_LINES = 1000
LINE_CHARS = 2000  # longer lines are cut, except under -vv
# What Metaflow's runtime writes when a task's log reaches --max-log-size (runtime.py: TruncatedBuffer).
TRUNCATED = "[TRUNCATED - MAXIMUM LOG FILE SIZE REACHED]"


def _verbosity() -> int:
    """The running session's ``-v`` count: longer tails and all traceback frames when > 0."""
    from ._settings import verbosity  # imports pytest: only once a report is written

    return verbosity()


def split(result: Any) -> tuple[Any | None, Any]:
    """``(executing process or None, client object)`` for any accepted result."""
    if hasattr(result, "command_obj"):
        return result, getattr(result, "run", None) or getattr(result, "task", None)
    return None, result


def kind(obj: Any) -> str:
    return getattr(obj, "_NAME", type(obj).__name__.lower())


def check_type(result: Any, allowed: tuple[str, ...], helper: str) -> None:
    _, obj = split(result)
    if kind(obj) not in allowed:
        raise TypeError(
            f"{helper}() takes an ExecutingRun or metaflow.Run"
            + (" (or ExecutingTask / metaflow.Task)" if "task" in allowed else "")
            + f", got {type(result).__name__}: {result!r}"
        )


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of ``text`` (1000 under ``-v``, all under ``-vv``), with a note if cut."""
    all_lines = text.rstrip("\n").splitlines()
    verbosity = _verbosity()
    if verbosity >= 2:
        return "\n".join(all_lines)
    if verbosity == 1:
        lines = max(lines, VERBOSE_TAIL_LINES)
    shown = [_cut(line) for line in all_lines[-lines:]]
    if len(all_lines) <= lines:
        return "\n".join(shown)
    more = "-vv shows all" if verbosity == 1 else "-v shows more, -vv all"
    return "\n".join([f"[... {len(all_lines) - lines} earlier lines; {more}]"] + shown)


def _cut(line: str) -> str:
    if len(line) <= LINE_CHARS:
        return line
    return line[:LINE_CHARS] + f" [... {len(line) - LINE_CHARS} more characters]"


def _metaflow_dir() -> str:
    import importlib.util

    spec = importlib.util.find_spec("metaflow")  # locates the package without importing it
    locations = list(spec.submodule_search_locations or []) if spec else []
    return locations[0] if locations else "\0"


_FRAME = re.compile(r'^(\s*)File "([^"]+)", line \d+')


def hide_metaflow_frames(text: str) -> str:
    """Drop traceback frames inside the metaflow package (all kept under ``-v``)."""
    if _verbosity() > 0:
        return text
    mf_dir = _metaflow_dir()
    out: list[str] = []
    hidden = 0
    skip_indent: int | None = None
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


def steps(run: Any) -> list[Any]:
    """The run's steps in execution order."""
    return sorted(run, key=lambda s: (s.created_at, s.id))


def tasks(result: Any, step: str | None = None) -> list[Any]:
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
        return str(executing.status)
    if obj.successful:
        return "successful"
    return "failed" if obj.finished or failed_tasks(obj) else "running"


def failed_tasks(obj: Any) -> list[Any]:
    """Tasks that ended without success (for a task: itself if it failed)."""
    candidates = [obj] if kind(obj) == "task" else [t for s in steps(obj) for t in s]
    return [t for t in candidates if not t.successful and (t.exception is not None or log_of(t, "stderr"))]


def exception_text(task: Any) -> str:
    exc = task.exception
    if exc is None:
        return "no exception recorded (the task was killed or died)"
    name = exc.type[len("builtins.") :] if exc.type.startswith("builtins.") else exc.type
    return f"{name}: {exc.exception}"


def attempt_of(task: Any) -> int:
    """Which attempt of the task (``@retry``) the object shows; 0 when unknown."""
    try:
        return int(task.current_attempt)
    except Exception:
        return 0


def attempt(task: Any, number: int) -> Any:
    """The same task as seen at attempt ``number`` (its logs, exception, artifacts)."""
    return type(task)(task.pathspec, attempt=number, _namespace_check=False)


def describe_task_failure(task: Any) -> str:
    last = attempt_of(task)
    where = f"task {task.pathspec}" + (f", attempt {last} (the last of {last + 1})" if last else "")
    lines = [f"step '{task.parent.id}' failed ({where}): {exception_text(task)}"]
    for number in range(last):  # earlier attempts of a @retry step, one line each
        try:
            lines.append(f"  attempt {number} failed too: {exception_text(attempt(task, number))}")
        except Exception:
            pass
    lines += [f"  stderr of {task.pathspec}" + (f" (attempt {last})" if last else "") + ":"]
    lines.append(indent(tail(hide_metaflow_frames(log_of(task, "stderr")))))
    return "\n".join(lines)


def describe_failure(result: Any) -> str:
    """Why a run failed: its failing step(s), exception and stderr tail."""
    executing, obj = split(result)
    state = status(result)
    failed = failed_tasks(obj) if obj is not None else []
    head = f"{kind(obj)} {obj.pathspec} is {state}" if obj is not None else f"run is {state}"
    parts = [head]
    parts += [describe_task_failure(t) for t in failed]
    if not failed and executing is not None:
        reason = runtime_failure(executing)
        if reason:
            parts.append(f"  no task failed; the Metaflow runtime stopped the run: {reason}")
        parts += ["  output of the Metaflow process (stderr):", indent(tail(executing.stderr))]
        parts += ["  (stdout):", indent(tail(executing.stdout))]
    return "\n".join(parts)


def runtime_output(executing: Any) -> str:
    """stderr and stdout of the Metaflow runtime process of an ``ExecutingRun``."""
    out = []
    for stream in ("stderr", "stdout"):
        try:
            out.append(getattr(executing, stream) or "")
        except Exception:  # log files already gone
            pass
    return "\n".join(out)


def runtime_failure(executing: Any) -> str:
    """The runtime's own "Step failure:" text (a failure outside any task), or ``""``."""
    lines = [line.strip() for line in runtime_output(executing).splitlines()]
    for i, line in enumerate(lines):
        if line == "Step failure:" and i + 1 < len(lines):
            return lines[i + 1]
    return ""


def end_step(run: Any) -> str:
    """The name of the run's end step: ``end``, or the step marked ``@step(end=True)``."""
    try:
        # Metaflow >= 2.19.x records the endpoints in the _parameters task's
        # metadata; Run.end_task reads them through this property.
        return str(run._graph_endpoints[1])
    except Exception:  # older Metaflow: only `end` can be the end step
        return "end"


def describe(result: Any) -> str:
    """One entry of the report section: pathspec, status, and the failure if any."""
    try:
        if status(result) == "successful":
            _, obj = split(result)
            return f"{kind(obj)} {obj.pathspec} is successful"
        return describe_failure(result)
    except Exception as e:  # the report must never break because a store is gone
        return f"{result!r}: could not be described ({type(e).__name__}: {e})"


# -- why a run could not start / why it timed out (text for _runner's errors) ----

_TRACEBACK = "Traceback (most recent call last):"
_OWN_ERROR = "RuntimeError: pytest-metaflow:"
# "2026-01-01 12:00:00.000 [123/score/0 (pid 42)] " before each line of a task's output
_TASK_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ (\[[^\]]*\] ?)?", re.MULTILINE)
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(: .*)?$")
_BANNER = ("Metaflow ", "Validating your flow", "The graph looks good", "Running pylint", "Pylint is happy")


def failure_reason(stderr: str, stdout: str) -> str:
    """The lines of a dead child's output that say why it died (indented)."""
    text = stderr if stderr.strip() else stdout
    if _TRACEBACK not in stderr and _TRACEBACK in stdout:
        # A spin prints its task's output, traceback included, on stdout.
        text = _TASK_PREFIX.sub("", stdout)
    ours = [line.strip() for line in text.splitlines() if line.strip().startswith(_OWN_ERROR)]
    if ours:  # raised by a file the plugin wrote (spin's artifacts module)
        return "    " + ours[-1]
    lines = [line for line in text.splitlines() if line.strip()]
    if _TRACEBACK in text:
        tb = text[text.rindex(_TRACEBACK) :].splitlines()
        where = [line.strip() for line in tb if line.strip().startswith('File "')]
        return "\n".join(["    " + _exception_line(tb)] + (["    at " + where[-1]] if where else []))
    lines = [line for line in lines if not line.strip().startswith(_BANNER)]
    return "\n".join(lines[-12:])


def _exception_line(traceback: list[str]) -> str:
    """``ValueError: boom`` out of a traceback, skipping Metaflow's lines after it."""
    import keyword

    lines = [line.strip() for line in traceback[1:] if line.strip()]
    named = [line for line in lines if _EXCEPTION_LINE.match(line) and not keyword.iskeyword(line)]
    with_message = [line for line in named if ": " in line]
    return (with_message or [line for line in named if line != "Task failed."] or lines or [""])[-1]


def _spun(command: list[str]) -> str | None:
    """The pathspec of a ``spin`` command line, ``None`` for anything else."""
    if "spin" in command:
        rest = command[command.index("spin") + 1 :]
        return rest[0] if rest and not rest[0].startswith("-") else "?"
    return None


_REMOTE_REFUSED = re.compile(r"@(kubernetes|batch)\b.* decorator requires --datastore")
_ENVIRONMENT_REFUSED = re.compile(r"@(conda|pypi)(_base)?\b.* decorator requires --environment")


def hints(reason: str) -> list[str]:
    """What the user can do about a start failure the plugin recognizes."""
    if _REMOTE_REFUSED.search(reason):
        return [
            'hint: --metaflow-remote=local (or runner(..., remote="local")) runs @kubernetes/@batch '
            'steps locally in tests; remote="keep" needs your S3 datastore and cluster (--metaflow-use-config)'
        ]
    if _ENVIRONMENT_REFUSED.search(reason):
        return [
            'hint: @conda/@pypi steps need runner(..., environment="conda") (or "pypi"), a micromamba '
            "binary (on PATH, METAFLOW_PATH_TO_MICROMAMBA, or ~/.metaflowconfig/micromamba, else Metaflow "
            "downloads it) and access to the package index; environments are cached in micromamba's root "
            "prefix and shared by all tests"
        ]
    return []


def start_failure(flow_file: str, command: list[str], stdout: str, stderr: str, timed_out_after: float | None) -> str:
    """Message of a ``FlowStartError``: the Metaflow process ended before handing back a run.

    For a ``spin`` that is the spun step failing: say so, with its exception
    and where it was raised.
    """
    spun = _spun(command)
    reason = failure_reason(stderr, stdout)
    if timed_out_after is not None:
        head = (
            f"Metaflow did not start the run of {flow_file} within file_read_timeout={timed_out_after:g} s; "
            "its processes were killed"
        )
    elif spun is not None and _TRACEBACK in stdout + stderr and _OWN_ERROR not in stdout + stderr:
        step = spun.split("/")[-2] if spun.count("/") >= 2 else spun.split("/")[-1]
        head = f"the spun step '{step}' failed (spin of {spun} in {flow_file}):"
    elif spun is not None:
        head = f"Metaflow could not spin {spun} of {flow_file}:"
    else:
        head = f"Metaflow could not start the run of {flow_file}:"
    if not reason:
        reason = "    (no output: did the flow file get stuck at import, in the Metaflow process?)"
    return "\n".join(
        [
            head,
            reason,
            *hints(reason),
            "(full logs: the exception's .stdout and .stderr; command: {})".format(" ".join(command)),
        ]
    )


def nothing_written(seconds: float | None) -> str:
    """The timeout text when the Metaflow process printed nothing at all.

    Metaflow prints its banner right after importing itself and the flow file;
    silence means the process was still starting (slow under load) or the
    flow file's module-level code never returned: we cannot tell which.
    """
    took = f"in {seconds:g} s" if seconds else "before it was stopped"
    return (
        f"the Metaflow process printed nothing {took}, not even its banner: it was still starting "
        "(Python, `import metaflow` and the flow file: under a second on an idle machine, far longer "
        "on a loaded one) or the flow file's module-level code did not return; a larger timeout tells them apart"
    )


def read_log(path: str | None) -> str:
    """The text of a log file, ``""`` when it is gone or unreadable."""
    try:
        with open(path or "", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def start_error(flow_file: str, error: RuntimeError, command_obj: Any = None, waited: float = 0) -> FlowStartError:
    """The :class:`FlowStartError` for Metaflow's ``RuntimeError`` when its process ended before a run."""
    cause = error.__cause__
    command = " ".join(getattr(cause, "cmd", None) or getattr(command_obj, "command", None) or [])
    stdout = stderr = ""
    if command_obj is not None and getattr(command_obj, "log_files", None):
        # Metaflow builds its message as soon as the child exits, possibly before
        # its pipe readers wrote the last lines to the log files: wait for them.
        for thread in (getattr(command_obj, "stdout_thread", None), getattr(command_obj, "stderr_thread", None)):
            if thread is not None:
                thread.join(timeout=10)
        stdout = read_log(command_obj.log_files.get("stdout"))
        stderr = read_log(command_obj.log_files.get("stderr"))
    if not (stdout or stderr):
        text = str(error)
        if "\nStderr:\n" in text:
            text, stderr = text.split("\nStderr:\n", 1)
        if "\nStdout:\n" in text:
            stdout = text.split("\nStdout:\n", 1)[1]
    timed_out = waited if isinstance(cause, TimeoutError) else None
    message = start_failure(flow_file, command.split(), stdout, stderr, timed_out)
    return FlowStartError(message, command=command, stdout=stdout, stderr=stderr)


def import_timeout(flow_file: str, seconds: float) -> str:
    """Why the import of a flow file in the pytest process was interrupted."""
    return (
        f"importing the flow file {flow_file} took more than the run timeout of {seconds:g} s "
        "(Metaflow imports it in the pytest process to build its command line); "
        "does it do slow work at module level?"
    )


# "<date> <time> [<run>/<step>/<task> (pid N)] <message>" in the runtime's output.
_TASK_LINE = re.compile(r"\[(?P<pathspec>[^\s\]/]+/[^\s\]/]+/[^\s\]/]+) \(pid \d+\)\] ?(?P<text>.*)$")
_TASK_ENDED = ("Task finished successfully.", "Task failed.")


def running_tasks(output: str) -> list[tuple[str, list[str]]]:
    """Tasks that started and never ended in the runtime's output, with their lines."""
    lines: dict[str, list[str]] = {}
    ended = set()
    for line in output.splitlines():
        m = _TASK_LINE.search(line)
        if m:
            lines.setdefault(m["pathspec"], []).append(m["text"])
            if m["text"].strip().startswith(_TASK_ENDED):
                ended.add(m["pathspec"])
    return [(p, text) for p, text in lines.items() if p not in ended]


def run_timeout(result: Any, flow_file: str, seconds: float | None, stdout: str, stderr: str) -> str:
    """Message of a ``RunTimeoutError``: what ran out of time, and which steps were running."""
    obj = getattr(result, "run", None) or getattr(result, "task", None)
    what = f"{kind(obj)} {obj.pathspec}" if obj is not None else f"the run of {flow_file}"
    parts = [
        f"{what} timed out after {seconds:g} s (the metaflow run timeout: "
        "@pytest.mark.metaflow(timeout=...) or --metaflow-timeout); its processes were killed"
    ]
    running = running_tasks(stdout + "\n" + stderr)
    flow = obj.pathspec.split("/")[0] + "/" if obj is not None else ""
    for pathspec, text in running:
        step = pathspec.split("/")[1]
        text = [line for line in text if line.strip() != "Task is starting."]
        parts.append(f"step '{step}' was running (task {flow}{pathspec}); its output:")
        parts.append(indent(tail("\n".join(text), 10)))
    output = (stderr.strip() + "\n" + stdout.strip()).strip()
    if not running and output:
        parts.append("no step was running; output of the Metaflow process:")
        parts.append(indent(tail(output, 10)))
    elif not running:
        parts.append(nothing_written(seconds))
    return "\n".join(parts)
