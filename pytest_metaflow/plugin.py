"""pytest hooks of pytest-metaflow: options, report header, failure reports.

Registered through the ``pytest11`` entry point ``metaflow`` (``-p no:metaflow``
disables it). Importing this module does not import metaflow.
"""

from __future__ import annotations

from typing import Any, Generator, List, Optional

import pytest

from . import reporting
from .fixtures import (  # noqa: F401  (fixtures are registered by import)
    RUNS_KEY,
    SESSION_KEY,
    SessionState,
    Settings,
    metaflow_store,
    parse_timeout,
    runner,
    runner_factory,
)

SHOW_OUTPUT_HELP = "stream the output of flow runs live instead of keeping it for the failure report"
PYLINT_HELP = "let Metaflow lint flows with pylint before each run (off by default: +1 s per run)"
USE_CONFIG_HELP = (
    "run flows with your Metaflow configuration (METAFLOW_HOME/profile, datastore, "
    "metadata service) instead of a hermetic local store per test"
)

TIMEOUT_HELP = (
    "kill a flow run (its whole process tree) that runs longer than this many seconds and "
    "fail the test with RunTimeoutError; 0 or unset: no limit. @pytest.mark.metaflow(timeout=...) wins"
)
NO_LEAK_GUARD_HELP = "do not check after each test that its runs left no process and no temporary file"
MARKER_HELP = (
    "metaflow(timeout=None): options of pytest-metaflow for this test; timeout=SECONDS "
    "bounds each flow run of the test (see --metaflow-timeout)"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("metaflow", "testing Metaflow flows (pytest-metaflow)")
    for name, help_text in (
        ("show-output", SHOW_OUTPUT_HELP),
        ("pylint", PYLINT_HELP),
        ("use-config", USE_CONFIG_HELP),
        ("no-leak-guard", NO_LEAK_GUARD_HELP),
    ):
        dest = "metaflow_" + name.replace("-", "_")
        group.addoption(f"--metaflow-{name}", action="store_true", default=None, dest=dest, help=help_text)
        parser.addini(dest, help_text, type="bool", default=False)
    group.addoption("--metaflow-timeout", default=None, dest="metaflow_timeout", metavar="SECONDS", help=TIMEOUT_HELP)
    parser.addini("metaflow_timeout", TIMEOUT_HELP, default=None)


def _flag(config: pytest.Config, name: str) -> bool:
    value = config.getoption(name)
    return bool(config.getini(name) if value is None else value)


def _timeout(config: pytest.Config) -> Optional[float]:
    value, source = config.getoption("metaflow_timeout"), "--metaflow-timeout"
    if value is None:
        value, source = config.getini("metaflow_timeout"), "ini option metaflow_timeout"
    try:
        return parse_timeout(value, source)
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    settings = Settings(
        show_output=_flag(config, "metaflow_show_output"),
        pylint=_flag(config, "metaflow_pylint"),
        use_config=_flag(config, "metaflow_use_config"),
        timeout=_timeout(config),
        leak_guard=not _flag(config, "metaflow_no_leak_guard"),
    )
    config.stash[SESSION_KEY] = SessionState(settings=settings)
    reporting.verbosity = config.get_verbosity()


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(SESSION_KEY, None)
    if state is not None:
        state.watchdog.close()


def pytest_report_header(config: pytest.Config) -> List[str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        mf = version("metaflow")
    except PackageNotFoundError:
        mf = "not installed"
    s = config.stash[SESSION_KEY].settings
    store = "your Metaflow configuration" if s.use_config else "hermetic local store per test"
    timeout = f"run timeout {s.timeout:g} s" if s.timeout else "no run timeout"
    return [
        f"metaflow: {mf}, {store}, pylint {'on' if s.pylint else 'off'}, "
        f"show output {'on' if s.show_output else 'off'}, {timeout}"
    ]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Any) -> Generator[None, Any, Any]:
    state = item.config.stash[SESSION_KEY]
    state.current_item = item
    try:
        return (yield)
    finally:
        state.current_item = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    runs = item.stash.get(RUNS_KEY, [])
    if report.failed and runs and report.when in ("setup", "call"):
        report.sections.append(("metaflow runs", "\n".join(reporting.describe(r) for r in runs)))
    return report
