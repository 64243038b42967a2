"""pytest hooks of pytest-metaflow: options, report header, failure reports.

Registered through the ``pytest11`` entry point ``metaflow`` (``-p no:metaflow``
disables it). Importing this module does not import metaflow.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# Loading the plugin imports only what registering options, ini keys, markers, hooks and
# fixtures needs (tests/test_plugin.py::test_loading_the_plugin_imports_few_modules): every
# pytest process pays this import, most never run a flow. Hook bodies import the rest when
# they have work to do.
from . import _settings
from ._settings import FAILED_KEY, RUNS_KEY, SESSION_KEY, STORE_KEY, SessionState, kept_path
from .fixtures import (  # noqa: F401  (fixtures are registered by import)
    _metaflow_session,
    artifact_snapshot,
    metaflow_store,
    nbrunner,
    run_notebook,
    runner,
    runner_factory,
)

if TYPE_CHECKING:
    from . import _summary

# Hermetic S3 (fixtures s3_server, metaflow_s3, and their hooks) lives in its own plugin module.
pytest_plugins = ["pytest_metaflow._s3plugin", "pytest_metaflow._snapshot_hooks"]

_SEEN_KEY = pytest.StashKey[int]()
_REMOTE_WORDS = {"local": "run locally", "keep": "kept (need your remote compute)"}
VENDORED_YAML_WARNING = "ignore::DeprecationWarning:_yaml"


def pytest_addoption(parser: pytest.Parser) -> None:
    _settings.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _settings.MARKER_HELP)
    # Metaflow's vendored yaml imports PyYAML's legacy `_yaml` shim, which warns once per
    # process; a test importing metaflow must not fail on it under filterwarnings=error.
    config.addinivalue_line("filterwarnings", VENDORED_YAML_WARNING)
    settings = _settings.from_config(config)
    _settings.activate(settings)
    state = SessionState(settings=settings)
    config.stash[SESSION_KEY] = state
    config.pluginmanager.register(_ReportCollector(state), "metaflow-report-collector")
    if getattr(config.option, "numprocesses", None):  # -n N: only then is there anything to share
        from . import _coverage

        _coverage.share_with_xdist_workers(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(SESSION_KEY, None)
    if state is not None:
        _settings.deactivate(state.settings)
        state.close()


def pytest_report_header(config: pytest.Config) -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    from . import _launcher, _processes

    try:
        mf = version("metaflow")
    except PackageNotFoundError:
        mf = "not installed"
    s = config.stash[SESSION_KEY].settings
    store = "your Metaflow configuration" if s.use_config else "hermetic local store per test"
    collect = " ".join(s.collect) if s.collect else "off"
    timeout = f"run timeout {s.timeout:g} s" if s.timeout else "no run timeout"
    return [
        f"metaflow: {mf}, {store}, pylint {'on' if s.pylint else 'off'}, "
        f"show output {'on' if s.show_output else 'off'}, {timeout}",
        f"metaflow: collect flows {collect}, keep stores {s.keep}, durations {s.durations}",
        f"metaflow: remote decorators (@kubernetes, @batch) {_REMOTE_WORDS[s.remote_mode]}",
        f"metaflow: process guard: {_processes.describe_backend()}",
        *(f"metaflow: WARNING: {line}" for line in _processes.limitations()),
        f"metaflow: task launcher {_launcher.describe(s.launcher)}",
    ]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    patterns = parent.config.stash[SESSION_KEY].settings.collect
    if not patterns:
        return None  # --metaflow-collect is off: no need to import the collector
    from . import _collect

    return _collect.collect_file(file_path, parent, patterns)


def _is_flow_item(item: pytest.Item) -> bool:
    # No FlowItem exists unless the collector was imported.
    collect = sys.modules.get(f"{__package__}._collect")
    return collect is not None and isinstance(item, collect.FlowItem)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    # Before pytest's own tmp_path clean-up: wait for the stores deleted in the background.
    session.config.stash[SESSION_KEY].wait_removals()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Any) -> Generator[None, Any, Any]:
    state = item.config.stash[SESSION_KEY]
    state.current_item = item
    try:
        return (yield)
    finally:
        state.current_item = None


_FLOW_FIXTURES = {"runner", "runner_factory", "nbrunner", "run_notebook", "metaflow_store"}


def _streams_output(item: pytest.Item) -> Any:
    """pytest's capture manager when this item's flow output must reach the terminal, else None."""
    if not item.config.stash[SESSION_KEY].settings.show_output or hasattr(item.config, "workerinput"):
        return None  # an xdist worker's stdout is not the terminal: keep the output for the report
    if not (_is_flow_item(item) or _FLOW_FIXTURES & set(getattr(item, "fixturenames", ()))):
        return None
    capman = item.config.pluginmanager.getplugin("capturemanager")
    return capman if capman is not None and capman.is_globally_capturing() else None


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _drop_own_frames(error: BaseException) -> None:
    """Cut the traceback of one of the plugin's call-site errors at the caller's line.

    A bad argument or flow file is the caller's mistake: the report shows their
    line and the message, not ~35 lines of the plugin's frames. Other
    exceptions (a bug in the plugin) keep every frame; so does ``--fulltrace``.
    """
    from .errors import PytestMetaflowError

    if not (isinstance(error, PytestMetaflowError) or type(error) in (TypeError, ValueError)):
        return
    tb = error.__traceback__
    last = tb
    while last is not None and last.tb_next is not None:
        last = last.tb_next
    if last is None or not last.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        return
    previous = None  # the last frame outside the plugin (the chain starts with this hook's own)
    while tb is not None:
        ours = tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR)
        if ours and previous is not None:
            previous.tb_next = None
            return
        if not ours:
            previous = tb
        tb = tb.tb_next


def _phase(item: pytest.Item) -> Generator[None, None, None]:
    capman = _streams_output(item)
    try:
        if capman is None:
            return (yield)
        # --metaflow-show-output works without -s: capture is off (as with -s)
        # while a test that runs flows sets up and runs.
        with capman.global_and_fixture_disabled():
            return (yield)
    except BaseException as e:
        if not item.config.getoption("fulltrace", False):
            _drop_own_frames(e)
        raise


@pytest.hookimpl(wrapper=True, trylast=True)  # trylast: inside pytest's capture wrapper
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    return (yield from _phase(item))


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    return (yield from _phase(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    runs = item.stash.get(RUNS_KEY, [])
    infos: list[_summary.RunInfo] = []
    if runs and call.when in ("setup", "call"):
        from . import _summary

        # Read the runs now: at teardown their store is gone. JUnit XML shows
        # user_properties as <property> elements.
        infos = [i for i in (_summary.run_info(r, item.nodeid) for r in runs[item.stash.get(_SEEN_KEY, 0) :]) if i]
        item.stash[_SEEN_KEY] = len(runs)
        item.user_properties.extend(("metaflow_run", f"{i['pathspec']} {i['status']}") for i in infos)
    report = yield
    if report.when not in ("setup", "call"):
        return report
    if infos:
        report.metaflow_runs = infos  # type: ignore[attr-defined]  # plain data: xdist ships it
    if report.failed:
        item.stash[FAILED_KEY] = True
        # A collected flow's failure already is the digest of its run.
        if runs and not _is_flow_item(item):
            from . import reporting

            report.sections.append(("metaflow runs", "\n".join(reporting.describe(r) for r in runs)))
    store = item.stash.get(STORE_KEY, None)
    destination = kept_path(item, item.config.stash[SESSION_KEY])
    if store is not None and destination is not None and (report.failed or report.when == "call"):
        report.metaflow_kept = str(destination)  # type: ignore[attr-defined]
        if report.failed:
            _add_kept_section(item, report, store, destination)
    return report


def _add_kept_section(item: pytest.Item, report: pytest.TestReport, store: Any, destination: Path) -> None:
    from . import _kept, reporting

    runs = []
    for result in item.stash.get(RUNS_KEY, []):
        _, obj = reporting.split(result)
        if obj is not None and reporting.kind(obj) == "run" and (Path(store.datastore_dir) / obj.pathspec).is_dir():
            runs.append((obj.pathspec, reporting.status(result)))
    report.sections.append(("metaflow kept store", _kept.snippet(destination, runs)))


class _ReportCollector:
    """Adds up what test reports carry; on the xdist controller they come from the workers."""

    def __init__(self, state: SessionState) -> None:
        self.state = state
        self.kept: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.state.run_infos.extend(getattr(report, "metaflow_runs", ()))
        kept = getattr(report, "metaflow_kept", None)
        if kept and kept not in self.kept:
            self.kept.append(kept)

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.state.run_infos and not self.kept:
            return
        terminalreporter.write_sep("=", "metaflow")
        if self.state.run_infos:
            from . import _summary

            for line in _summary.lines(self.state.run_infos, self.state.settings.durations):
                terminalreporter.write_line(line)
        if self.kept:
            where = os.path.commonpath(self.kept) if len(self.kept) > 1 else os.path.dirname(self.kept[0])
            terminalreporter.write_line(f"kept the Metaflow stores of {len(self.kept)} test(s) in {where}")
