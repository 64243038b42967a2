"""Shared fixtures of the plugin's own tests.

Tests that run flows use ``pytester.runpytest_subprocess`` (a real pytest in a
real process, as a user would run it) on test files written into a temp dir
together with the flows from ``tests/flows/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

FLOWS = Path(__file__).parent / "flows"
INNER_INI = """
[pytest]
addopts = -p no:cacheprovider
asyncio_default_fixture_loop_scope = function
"""


@pytest.fixture
def flow_pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester dir holding a copy of every flow in ``tests/flows/``."""
    for flow in FLOWS.glob("*.py"):
        shutil.copy(flow, pytester.path / flow.name)
    return pytester


@pytest.fixture(autouse=True)
def _inner_ini(request: pytest.FixtureRequest) -> None:
    """Every inner pytest gets a minimal ini (not this project's strict one)."""
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester").makeini(INNER_INI)


@pytest.fixture(autouse=True)
def _no_user_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every self-test the way CI runs: no USER in the environment."""
    for var in ("USER", "USERNAME", "SUDO_USER", "METAFLOW_USER"):
        monkeypatch.delenv(var, raising=False)
