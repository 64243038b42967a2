"""Helpers the test modules written by ``pytest-metaflow generate`` call.

A generated test spins one step of a fresh base run with the inputs recorded
from the original run, then compares the step's artifacts with the recorded
outputs through ``artifact_snapshot``::

    inputs = load_inputs(INPUTS / "train.py")
    spun = spin_step(runner(FLOW), base_run, "train", inputs)
    artifact_snapshot.assert_match(spun, step="train", names=step_outputs(spun, base_run, inputs))

The names compared are found at test time (:func:`step_outputs`), not listed
in the module: an artifact the step starts (or stops) setting fails the test,
and ``pytest --snapshot-update`` accepts it.

Importing this module does not import metaflow.
"""

from __future__ import annotations

import operator
import runpy
import warnings
from pathlib import Path
from typing import Any

from . import reporting
from .errors import PytestMetaflowWarning

__all__ = ["load_inputs", "spin_step", "step_outputs", "input_key"]

_hide = operator.methodcaller("errisinstance", AssertionError)
_MISSING_INPUTS = "Some input datastores are missing"


def load_inputs(path: str | Path) -> dict[str, Any]:
    """The ``INPUTS`` dict of a recorded inputs file (a Python module; it is executed)."""
    return dict(runpy.run_path(str(path))["INPUTS"])


def input_key(task: Any) -> str:
    """How a join's recorded inputs name the parent task: ``step`` or ``step[foreach index]``."""
    index = _index(task)
    return task.parent.id if index is None else f"{task.parent.id}[{index}]"


def _index(task: Any) -> int | None:
    try:
        index = task.index
        return None if index is None else int(index)
    except Exception:  # not in a foreach
        return None


def representative_task(run: Any, step: str) -> Any:
    """The task of ``step`` a generated test spins: the first of a foreach (lowest index)."""
    names = [s.id for s in run]
    if step not in names:
        raise AssertionError(
            f"the base run {run.pathspec} has no task of step {step!r} to spin; "
            + (reporting.describe_failure(run) if not run.successful else f"its steps: {', '.join(names)}")
        )
    tasks = list(run[step])
    return min(tasks, key=lambda t: (_index(t) or 0, int(t.id) if t.id.isdigit() else 0))


def spin_step(runner: Any, base_run: Any, step: str, inputs: dict[str, Any], *, join: bool = False) -> Any:
    """Spin ``step`` of ``base_run`` with ``inputs`` as the artifacts it reads; return the ``ExecutingTask``.

    Parameters
    ----------
    runner : metaflow.Runner
        A runner of the flow (the ``runner`` fixture's).
    base_run : ExecutingRun or metaflow.Run
        A run of the flow; only its structure (tasks, foreach indices) is used.
    step : str
        The step to spin (its first task, for a foreach).
    inputs : dict
        Artifact name to value; for a join (``join=True``), :func:`input_key`
        of each parent task (``"step"`` or ``"step[index]"``) to such a dict.
    join : bool
        Whether ``step`` is a join step.
    """
    __tracebackhide__ = _hide
    _, run = reporting.split(base_run)
    task = representative_task(run, step)
    if join:
        parents = {input_key(p): p for p in task.parent_tasks}
        unknown = sorted(set(inputs) - set(parents))
        if unknown or len(parents) != len(inputs):
            raise AssertionError(
                f"the join step {step!r} of the base run reads inputs {sorted(parents)}, "
                f"but the recorded inputs are for {sorted(inputs)}; "
                "did a change upstream alter the fan-out? Regenerate with `pytest-metaflow generate`"
            )
        # Metaflow's spin takes a join's inputs keyed by parent pathspec without the flow.
        artifacts = {parents[key].pathspec.split("/", 1)[1]: values for key, values in inputs.items()}
    else:
        artifacts = dict(inputs)
    with warnings.catch_warnings():
        # Every recorded input is passed on purpose, also those the step only passes down.
        warnings.simplefilter("ignore", PytestMetaflowWarning)
        try:
            return runner.spin(task.pathspec, artifacts=artifacts, persist=True)
        except Exception as e:
            if join and len(artifacts) > 4 and _MISSING_INPUTS in str(getattr(e, "stdout", "")):
                import pytest

                # Seen with Metaflow 2.19.39: for more than 4 inputs the spun task looks its
                # parents up in the spin's own datastore (TaskDataStoreSet) and finds none.
                pytest.skip(
                    f"Metaflow's spin cannot spin the join step {step!r} of {len(artifacts)} inputs "
                    f"(more than 4: the spun task reports {_MISSING_INPUTS!r}); a Metaflow limitation"
                )
            raise


def step_outputs(spun: Any, base_run: Any, inputs: dict[str, Any], *, join: bool = False) -> list[str]:
    """The names of the artifacts the spun step set, as opposed to those it passed down.

    An artifact is passed down when it holds the value its step was fed under
    that name: the recorded input, or the base run's parent task's value
    (Metaflow's spin persists passed-down artifacts from the base run, not from
    ``artifacts=``); for a join, for every parent. Parameters, class constants,
    Metaflow's own ``_...`` artifacts and ``name`` are left out. Found anew on
    every run, so an artifact the step starts or stops setting shows in the
    snapshot comparison (``new artifact, not in the snapshot`` / ``in the
    snapshot, missing now``).

    Parameters
    ----------
    spun : ExecutingTask or metaflow.Task
        What :func:`spin_step` returned.
    base_run : ExecutingRun or metaflow.Run
        The run the step was spun from.
    inputs : dict
        The inputs the step was spun with, as passed to :func:`spin_step`.
    join : bool
        Whether the step is a join (``inputs`` then holds one dict per parent).

    Returns
    -------
    list of str
        Sorted artifact names, to pass as ``names=`` to ``artifact_snapshot.assert_match``.
    """
    from ._generate import parents_of
    from ._snapshot import user_artifacts

    _, task = reporting.split(spun)
    _, run = reporting.split(base_run)
    parents, _ = parents_of(run, representative_task(run, task.pathspec.split("/")[2]))
    if join:
        by_key = {input_key(p): p for p in parents}
        fed = [(dict(values), by_key.get(key)) for key, values in inputs.items()]
    else:
        fed = [(inputs, parents[0] if parents else None)]
    flow_level = _flow_level_names(task)
    names = []
    for name, artifact in user_artifacts(task).items():
        if name in flow_level:
            continue  # parameters and class constants: no step sets them
        if not fed:
            names.append(name)
            continue
        try:
            value = artifact.data
        except Exception:  # a spun join task cannot read what it only passed down (see README)
            continue
        if not all(_passed_down(value, name, recorded, parent) for recorded, parent in fed):
            names.append(name)
    return sorted(names)


def _passed_down(value: Any, name: str, recorded: dict[str, Any], parent: Any) -> bool:
    # The base run's parent counts too: after a change upstream it may pass down
    # an artifact the recorded inputs do not have yet; that is not this step's doing.
    if name in recorded and _same(value, recorded[name]):
        return True
    try:
        return parent is not None and name in parent and _same(value, parent[name].data)
    except Exception:  # the parent's artifact cannot be read
        return False


def _same(a: Any, b: Any) -> bool:
    """Equal as the snapshot would write them (lossless text: numpy and pandas included)."""
    from . import _values

    try:
        return _values.write_value(a, "a")[0] == _values.write_value(b, "a")[0]
    except Exception:  # a value no snapshot can hold: the step's test would name it if it were an output
        return True


def _flow_level_names(task: Any) -> list[str]:
    try:
        info = task["_graph_info"].data
    except Exception:  # not readable from a spun join task: its parents' values then decide
        return []
    return [str(p["name"]) for key in ("parameters", "constants") for p in info.get(key, [])]
