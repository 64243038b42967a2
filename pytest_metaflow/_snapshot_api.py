"""The public type of the ``artifact_snapshot`` fixture (imports neither syrupy nor metaflow)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, Union, runtime_checkable

if TYPE_CHECKING:  # only for the annotations: the plugin imports metaflow lazily
    from metaflow.client.core import Run, Task
    from metaflow.runner.metaflow_runner import ExecutingRun, ExecutingTask

    Result = Union[ExecutingRun, ExecutingTask, Run, Task]
else:
    Result = Any

__all__ = ["ArtifactSnapshot"]


@runtime_checkable
class ArtifactSnapshot(Protocol):
    """Type of the ``artifact_snapshot`` fixture: Metaflow artifacts compared with stored snapshots.

    Snapshots are kept by syrupy in ``__snapshots__/`` next to the test file
    (large numpy/pandas values in side files under ``__snapshot_blobs__/``);
    ``pytest --snapshot-update`` creates and updates them and deletes those no
    test uses any more.

    Examples
    --------
    >>> from pytest_metaflow import ArtifactSnapshot
    >>> def test_train(runner, artifact_snapshot: ArtifactSnapshot) -> None:  # doctest: +SKIP
    ...     result = runner("train_flow.py").run(epochs=2)
    ...     artifact_snapshot.assert_match(result, step="train")
    """

    def assert_match(
        self,
        result: Result,
        *,
        step: str | None = None,
        names: Sequence[str] | None = None,
        rtol: float | None = None,
        atol: float | None = None,
    ) -> None:
        """Compare the artifacts of a run's step (or of a task) with the stored snapshot.

        Each call in a test is one snapshot, named ``<test>[<step>]`` (a second
        call for the same step: ``<test>[<step>#2]``).

        Parameters
        ----------
        result : ExecutingRun, ExecutingTask, metaflow.Run or metaflow.Task
            What ``run()``, ``nbrun()`` or ``spin(..., persist=True)`` returned,
            or a client object.
        step : str, optional
            The step whose artifacts are compared; default the flow's end step
            (for a task: its own step). A foreach step compares every task, in
            task order.
        names : sequence of str, optional
            Only these artifacts; default every artifact the step set
            (Metaflow's own ``_...`` artifacts and ``name`` left out).
        rtol, atol : float, optional
            Floats (also inside arrays and frames) match when
            ``math.isclose(old, new, rel_tol=rtol, abs_tol=atol)``; default exact.

        Raises
        ------
        AssertionError
            No snapshot yet (the message says to run ``pytest --snapshot-update``),
            or values differ: the message names each artifact and element that
            changed, and artifacts new or missing in ``names``/the step.
        TypeError
            ``result`` is of another type, ``names`` is a string, or a value
            cannot be written (the message names the artifact).
        ValueError
            ``step`` does not match the task given.
        """
        ...
