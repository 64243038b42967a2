"""Errors raised by the plugin at the call site, instead of hangs or deep tracebacks."""

from __future__ import annotations


class PytestMetaflowError(Exception):
    """Base class of the plugin's errors."""


class FlowFileNotFoundError(PytestMetaflowError, FileNotFoundError):
    """The flow file given to ``runner``/``runner_factory`` exists nowhere we looked."""


class ConfigFileNotFoundError(PytestMetaflowError, FileNotFoundError):
    """A ``Config`` file of the flow (given with ``config=`` or its default) is not where the run looks.

    The message names the path tried and the run's working directory.
    """


class InvalidFlowError(PytestMetaflowError, ValueError):
    """The flow file cannot be run: syntax error, no FlowSpec, no ``__main__`` guard."""


class FlowStartError(PytestMetaflowError, RuntimeError):
    """The Metaflow process died before the run started (graph, lint or import error).

    Subclasses ``RuntimeError`` like the error Metaflow raises in that case. The
    message leads with the reason; the full logs stay in ``stdout``/``stderr``.
    """

    def __init__(self, message: str, *, command: str = "", stdout: str = "", stderr: str = "") -> None:
        super().__init__(message)
        self.command = command
        self.stdout = stdout
        self.stderr = stderr


class RunTimeoutError(PytestMetaflowError, TimeoutError):
    """A run exceeded the time the test allowed it (marker or ``--metaflow-timeout``)."""

    def __init__(self, message: str, result: object | None = None) -> None:
        super().__init__(message)
        self.result = result


class NotebookCellError(PytestMetaflowError, AssertionError):
    """A cell of a notebook executed by ``run_notebook`` raised.

    The message holds the cell's index and source and the kernel's traceback;
    ``notebook`` is the notebook executed up to that cell.
    """

    def __init__(self, message: str, *, notebook: object, cell_index: int, source: str, traceback: str) -> None:
        super().__init__(message)
        self.notebook = notebook
        self.cell_index = cell_index
        self.source = source
        self.traceback = traceback


class PytestMetaflowWarning(UserWarning):
    """Something in a test is probably not what its author meant (e.g. a spin artifact the step never reads)."""


class S3EndpointError(PytestMetaflowError, ConnectionError):
    """The hermetic S3 endpoint is not local, or does not answer (``metaflow_s3``, ``s3_server``)."""


class NotebookError(PytestMetaflowError, ValueError):
    """The file given to ``run_notebook`` is not a readable Jupyter notebook."""


class NotebookTimeoutError(PytestMetaflowError, TimeoutError):
    """A cell of a notebook executed by ``run_notebook`` exceeded its ``timeout``."""
