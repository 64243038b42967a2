"""The public types of what the helpers accept (type-checking only: importing this does not import metaflow)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from metaflow.client.core import Run, Task
    from metaflow.runner.metaflow_runner import ExecutingRun, ExecutingTask

#: A run, as the runner returns it (``ExecutingRun``) or as the client reads it (``metaflow.Run``).
RunResult = Union["ExecutingRun", "Run"]
#: A run or one task of it: ``ExecutingRun``, ``metaflow.Run``, ``ExecutingTask`` (a spin) or ``metaflow.Task``.
RunOrTask = Union["ExecutingRun", "Run", "ExecutingTask", "Task"]
