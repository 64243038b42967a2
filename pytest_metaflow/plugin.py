"""pytest hooks of pytest-metaflow: options, report header, failure reports.

Registered through the ``pytest11`` entry point ``metaflow`` (``-p no:metaflow``
disables it). Importing this module does not import metaflow.
"""

from __future__ import annotations

from typing import Any, Generator, List

import pytest

from . import reporting
from .fixtures import (  # noqa: F401  (fixtures are registered by import)
    RUNS_KEY,
    SESSION_KEY,
    SessionState,
    Settings,
    metaflow_store,
    runner,
    runner_factory,
)

SHOW_OUTPUT_HELP = "stream the output of flow runs live instead of keeping it for the failure report"
PYLINT_HELP = "let Metaflow lint flows with pylint before each run (off by default: +1 s per run)"
USE_CONFIG_HELP = (
    "run flows with your Metaflow configuration (METAFLOW_HOME/profile, datastore, "
    "metadata service) instead of a hermetic local store per test"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("metaflow", "testing Metaflow flows (pytest-metaflow)")
    for name, help_text in (
        ("show-output", SHOW_OUTPUT_HELP),
        ("pylint", PYLINT_HELP),
        ("use-config", USE_CONFIG_HELP),
    ):
        dest = "metaflow_" + name.replace("-", "_")
        group.addoption(f"--metaflow-{name}", action="store_true", default=None, dest=dest, help=help_text)
        parser.addini(dest, help_text, type="bool", default=False)


def _flag(config: pytest.Config, name: str) -> bool:
    value = config.getoption(name)
    return bool(config.getini(name) if value is None else value)


def pytest_configure(config: pytest.Config) -> None:
    settings = Settings(
        show_output=_flag(config, "metaflow_show_output"),
        pylint=_flag(config, "metaflow_pylint"),
        use_config=_flag(config, "metaflow_use_config"),
    )
    config.stash[SESSION_KEY] = SessionState(settings=settings)
    reporting.verbosity = config.get_verbosity()


def pytest_report_header(config: pytest.Config) -> List[str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        mf = version("metaflow")
    except PackageNotFoundError:
        mf = "not installed"
    s = config.stash[SESSION_KEY].settings
    store = "your Metaflow configuration" if s.use_config else "hermetic local store per test"
    return [f"metaflow: {mf}, {store}, pylint {'on' if s.pylint else 'off'}, show output {'on' if s.show_output else 'off'}"]


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    # Before pytest's own tmp_path clean-up: wait for the stores deleted in the background.
    session.config.stash[SESSION_KEY].remover.close()


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
