"""Remote jobs of a run (``@kubernetes``, ``@batch``): labelled with the session and the test,
stopped with Metaflow's own ``kill`` command when the plugin kills the run.

Killing a local Metaflow run does not stop the jobs it submitted: the job keeps
running on the cluster (and costing) after the test. Metaflow's own commands
do stop them::

    python flow.py kubernetes kill --run-id RUN_ID
    python flow.py batch kill --run-id RUN_ID

The plugin issues them itself wherever it kills a run's processes (run timeout,
teardown, and so Ctrl-C, whose teardown kills the runs): :func:`jobs_stopped`
wraps that kill. Which runs had remote tasks is read from the processes about
to be killed, before they die: Metaflow starts a remote task as a local process
``<flow> ... kubernetes step ...`` (``batch step``) that polls the job until it
ends, with ``METAFLOW_RUN_ID`` in its environment. So only runs that really
had a remote task in flight are killed, each exactly once, and nothing is
looked up when the runs were local (the default, ``--metaflow-remote=local``).

Labels: :func:`labels_env` gives every run ``METAFLOW_KUBERNETES_LABELS``
(Metaflow's own setting, merged with ``@kubernetes(labels=...)``) and
``METAFLOW_BATCH_DEFAULT_TAGS`` (applied by Metaflow when
``METAFLOW_BATCH_EMIT_TAGS`` is true, which needs ``batch:TagResource``),
naming the pytest session and the test, so that a team can find (and clean
up) what a test session left on the cluster:
``kubectl get jobs -l pytest-metaflow/session=SESSION``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from . import _processes

KINDS = ("kubernetes", "batch")
SESSION_LABEL = "pytest-metaflow/session"
TEST_LABEL = "pytest-metaflow/test"
# Batch tag keys cannot hold "/" everywhere AWS shows them: dashes instead.
SESSION_TAG = "pytest-metaflow-session"
TEST_TAG = "pytest-metaflow-test"
# Metaflow's kill lists pods/jobs and patches each one: bounded, but give it time.
KILL_TIMEOUT = 120.0


def label_value(text: str) -> str:
    """``text`` as a Kubernetes label value: at most 63 of ``[A-Za-z0-9._-]``, alphanumeric at both ends."""
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[-63:]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value) or "test"


def labels_env(session: str, test: str, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment that labels a run's Kubernetes jobs and tags its Batch jobs with ``session`` and ``test``.

    Labels or tags already set in ``environ`` (the team's) are kept; ours are added.
    """
    ours = f"{SESSION_LABEL}={label_value(session)},{TEST_LABEL}={label_value(test)}"
    theirs = environ.get("METAFLOW_KUBERNETES_LABELS", "").strip(", ")
    try:
        tags = json.loads(environ.get("METAFLOW_BATCH_DEFAULT_TAGS") or "{}")
    except ValueError:
        tags = None  # theirs is broken: Metaflow will say so; do not hide it behind ours
    env = {"METAFLOW_KUBERNETES_LABELS": f"{theirs},{ours}" if theirs else ours}
    if isinstance(tags, dict):
        # AWS tag values: at most 256 characters.
        env["METAFLOW_BATCH_DEFAULT_TAGS"] = json.dumps({**tags, SESSION_TAG: session[:256], TEST_TAG: test[-256:]})
    return env


def remote_tasks(token: str) -> list[tuple[str, str]]:
    """``(kind, run_id)`` of the remote tasks in flight among the processes carrying ``token``."""
    found = set()
    for pid in _processes.find_processes([token]):
        argv = (_processes.read_proc(pid, "cmdline") or b"").decode(errors="replace").split("\0")
        kind = next((k for k in KINDS for i, a in enumerate(argv[:-1]) if a == k and argv[i + 1] == "step"), None)
        if kind is None:
            continue
        environ = (_processes.read_proc(pid, "environ") or b"").decode(errors="replace").split("\0")
        run_id = next((e.split("=", 1)[1] for e in environ if e.startswith("METAFLOW_RUN_ID=")), None)
        if run_id:
            found.add((kind, run_id))
    return sorted(found)


def kill_command(flow_file: str, kind: str, run_id: str) -> list[str]:
    """Metaflow's own command that stops the remote tasks of ``run_id``."""
    return [sys.executable, flow_file, "--quiet", kind, "kill", "--run-id", run_id]


def stop(runner: Any, tasks: list[tuple[str, str]], log_dir: Path | None = None) -> list[dict[str, Any]]:
    """Run the kill command of each ``(kind, run_id)`` with the run's environment; return what happened.

    The outcome (command, exit code, output) is appended to ``log_dir/remote-kill.log``
    (the store's logs) so that a kill that failed can be seen after the test.
    """
    outcomes = []
    for kind, run_id in tasks:
        command = kill_command(runner.flow_file, kind, run_id)
        outcome: dict[str, Any] = {"command": command}
        try:
            done = subprocess.run(
                command,
                env=dict(runner.env_vars),  # the run's own: kube-config, namespace, datastore, token
                cwd=runner.cwd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=KILL_TIMEOUT,
            )
            outcome.update(returncode=done.returncode, output=(done.stdout + done.stderr).strip())
        except (OSError, subprocess.TimeoutExpired) as e:
            outcome.update(returncode=None, output=str(e))
        outcomes.append(outcome)
        if log_dir is not None:
            with contextlib.suppress(OSError), open(Path(log_dir) / "remote-kill.log", "a", encoding="utf-8") as f:
                f.write(json.dumps(outcome) + "\n")
    return outcomes


@contextlib.contextmanager
def jobs_stopped(runner: Any, token: str) -> Iterator[None]:
    """Around the kill of a run's local processes: then stop the remote jobs they were waiting on.

    The local processes die first: a remote job stopped while its local
    ``kubernetes step`` process still watched it would count as a failed
    attempt, and ``@retry`` would submit a new one.
    """
    env = getattr(runner, "env_vars", None) or {}
    tasks = [] if env.get("PYTEST_METAFLOW_REMOTE") == "local" else remote_tasks(token)
    yield
    if tasks:
        store = getattr(runner, "_store", None)
        stop(runner, tasks, getattr(store, "logs", None))
