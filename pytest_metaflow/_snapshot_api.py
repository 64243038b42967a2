"""The public type of the ``artifact_snapshot`` fixture (imports neither syrupy nor metaflow).

One class, the fixture's value itself: its signature is not repeated in a Protocol.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:  # only for the annotations: the plugin imports metaflow lazily
    from metaflow.client.core import Run, Task
    from metaflow.runner.metaflow_runner import ExecutingRun, ExecutingTask

    Result = Union[ExecutingRun, ExecutingTask, Run, Task]
else:
    Result = Any

__all__ = ["ArtifactSnapshot"]

_hide = operator.methodcaller("errisinstance", AssertionError)


class ArtifactSnapshot:
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

    # Built by the fixture (pytest_metaflow._snapshot.make_fixture) on syrupy's ``snapshot``
    # fixture with the artifact extension; this module imports neither, so the type can be
    # imported (and annotated with) without syrupy installed.
    def __init__(self, assertion: Any, test_path: Path) -> None:
        from ._snapshot_hooks import BLOB_DIRNAME

        self._assertion = assertion
        self._blob_dir = Path(test_path).parent / BLOB_DIRNAME
        self._used: dict[str, int] = {}

    def _name(self, step: str) -> str:
        count = self._used.get(step, 0) + 1
        self._used[step] = count
        return step if count == 1 else f"{step}#{count}"

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
        __tracebackhide__ = _hide
        from . import _values
        from ._snapshot import _PENDING, _UPDATE_HINT, document_of
        from ._snapshot_hooks import BLOB_DIRNAME

        try:
            step_name, doc = document_of(result, step, names)
        except (_values.SnapshotValueError, ValueError) as e:
            # Bad input, not a bug here: raised at the call site, without our frames.
            raise type(e)(str(e)) from None
        extension = self._assertion.extension
        extension.tolerance = _values.Tolerance(rtol, atol)
        extension.blob_dir = self._blob_dir
        name = self._name(step_name)
        _PENDING.update(doc.large)
        try:
            ok = self._assertion(name=name) == doc
            outcome = self._assertion.executions[self._assertion.num_executions - 1]
            if ok:
                return
            if outcome.exception is not None:
                raise outcome.exception
            location = os.path.relpath(outcome.snapshot_location)
            if outcome.recalled_data is None:
                raise AssertionError(
                    f"no snapshot {outcome.snapshot_name} in {location} yet: run `pytest --snapshot-update` "
                    "to create it, review it, and commit __snapshots__/"
                    + (f" and {BLOB_DIRNAME}/" if doc.large else "")
                )
            lines = extension.differences(str(outcome.recalled_data), doc.text)
        finally:
            for digest in doc.large:
                _PENDING.pop(digest, None)
        tol = "" if extension.tolerance.exact else f" (rtol={rtol}, atol={atol})"
        raise AssertionError(
            f"artifacts of step {step_name!r} differ from snapshot {outcome.snapshot_name} in {location}{tol}:\n"
            + "\n".join("  " + line for line in lines or ["(the texts differ)"])
            + f"\n{_UPDATE_HINT}"
        )
