"""pytest-metaflow: test Metaflow flows like functions.

Fixtures (``runner``, ``nbrunner``, ``run_notebook``, ``runner_factory``, ``metaflow_s3``, ``s3_server``,
``metaflow_store``, ``artifact_snapshot``) are registered by
the ``pytest11`` entry point; this package exports the assertion helpers, the
error types and the fixtures' types. Importing it does not import metaflow.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._flowconfig import FLOW_DIR
    from ._nbrunner import FixtureNBRunner, NBRunnerFixture
    from ._run_notebook import NotebookFixture
    from ._runner import FixtureRunner
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

# Where each public name lives: `import pytest_metaflow` (which loading the plugin does,
# the plugin being a submodule) imports none of them; the first access imports its module
# (PEP 562). Every pytest process pays the package's import, most never use these names.
# FixtureRunner subclasses metaflow.Runner: its first access imports metaflow.
_ERRORS = (
    "ConfigFileNotFoundError FlowFileNotFoundError FlowStartError InvalidFlowError NotebookCellError "
    "NotebookError NotebookTimeoutError PytestMetaflowError PytestMetaflowWarning RunTimeoutError S3EndpointError"
)
_ASSERTIONS = (
    "assert_artifacts assert_log_contains assert_log_matches assert_log_not_contains "
    "assert_run_failed assert_run_succeeded"
)
_WHERE: dict[str, tuple[str, str]] = {
    "FLOW_DIR": ("_flowconfig", "FLOW_DIR"),
    "FixtureNBRunner": ("_nbrunner", "FixtureNBRunner"),
    "NBRunnerFixture": ("_nbrunner", "NBRunnerFixture"),
    "NotebookFixture": ("_run_notebook", "NotebookFixture"),
    "FixtureRunner": ("_runner", "FixtureRunner"),
    "MetaflowS3": ("_s3", "MetaflowS3"),
    "S3Server": ("_s3", "S3Server"),
    "ArtifactSnapshot": ("_snapshot_api", "ArtifactSnapshot"),
    "MetaflowStore": ("_store", "Store"),
    "RunOrTask": ("_types", "RunOrTask"),
    "RunResult": ("_types", "RunResult"),
    "card_components": ("cards", "card_components"),
    "card_data": ("cards", "card_data"),
    "RunnerFixture": ("fixtures", "RunnerFixture"),
    **{name: ("errors", name) for name in _ERRORS.split()},
    **{name: ("assertions", name) for name in _ASSERTIONS.split()},
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{where[0]}"), where[1])
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


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
