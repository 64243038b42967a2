"""pytest-metaflow: test Metaflow flows like functions.

Fixtures (``runner``, ``nbrunner``, ``run_notebook``, ``runner_factory``, ``metaflow_s3``, ``s3_server``,
``metaflow_store``, ``artifact_snapshot``) are registered by
the ``pytest11`` entry point; this package exports the assertion helpers, the
error types and the fixtures' types. Importing it does not import metaflow.
"""

from typing import TYPE_CHECKING, Any

from ._flowconfig import FLOW_DIR
from ._nbrunner import FixtureNBRunner, NBRunnerFixture
from ._run_notebook import NotebookFixture
from ._s3 import MetaflowS3, S3Server
from ._snapshot_api import ArtifactSnapshot
from ._store import Store as MetaflowStore
from ._types import RunOrTask, RunResult
from .assertions import (
    assert_artifacts,
    assert_log_contains,
    assert_log_matches,
    assert_log_not_contains,
    assert_run_failed,
    assert_run_succeeded,
)
from .cards import card_components, card_data
from .errors import (
    ConfigFileNotFoundError,
    FlowFileNotFoundError,
    FlowStartError,
    InvalidFlowError,
    NotebookCellError,
    NotebookError,
    NotebookTimeoutError,
    PytestMetaflowError,
    PytestMetaflowWarning,
    RunTimeoutError,
    S3EndpointError,
)
from .fixtures import RunnerFixture

if TYPE_CHECKING:
    from ._runner import FixtureRunner


def __getattr__(name: str) -> Any:
    # FixtureRunner subclasses metaflow.Runner: importing it imports metaflow, so only on demand.
    if name == "FixtureRunner":
        from ._runner import FixtureRunner

        return FixtureRunner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "ArtifactSnapshot",
    "assert_artifacts",
    "assert_log_contains",
    "assert_log_matches",
    "assert_log_not_contains",
    "assert_run_failed",
    "assert_run_succeeded",
    "card_components",
    "card_data",
    "ConfigFileNotFoundError",
    "FLOW_DIR",
    "FlowFileNotFoundError",
    "FlowStartError",
    "InvalidFlowError",
    "NotebookCellError",
    "NotebookError",
    "NotebookTimeoutError",
    "PytestMetaflowError",
    "PytestMetaflowWarning",
    "RunTimeoutError",
    "S3EndpointError",
    "MetaflowS3",
    "S3Server",
    "NBRunnerFixture",
    "NotebookFixture",
    "RunnerFixture",
    "FixtureNBRunner",
    "MetaflowStore",
    "RunOrTask",
    "RunResult",
    "FixtureRunner",
]
