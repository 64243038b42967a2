"""pytest-metaflow: test Metaflow flows like functions.

Fixtures (``runner``, ``nbrunner``, ``run_notebook``, ``runner_factory``, ``metaflow_s3``, ``s3_server``,
``metaflow_store``, ``artifact_snapshot``) are registered by
the ``pytest11`` entry point; this package exports the assertion helpers, the
error types and the fixtures' types. Importing it does not import metaflow.
"""

from ._flowconfig import FLOW_DIR
from ._s3 import MetaflowS3, S3Server
from ._snapshot_api import ArtifactSnapshot
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
from ._nbrunner import FixtureNBRunner, NBRunnerFixture
from ._run_notebook import NotebookFixture
from ._store import Store as MetaflowStore
from .fixtures import RunnerFixture

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
]
