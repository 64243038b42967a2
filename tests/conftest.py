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


# Metaflow's client cache defaults to this fixed path (not TMPDIR); an entry is named after
# the datastore root it caches, with "/" turned into "_".
DEFAULT_CLIENT_CACHE = Path("/tmp/metaflow_client")


@pytest.fixture(scope="session", autouse=True)
def _no_client_cache_outside_basetemp(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Fail the session if any run of this session's tests cached client data in /tmp."""
    yield
    mangled = str(tmp_path_factory.getbasetemp()).replace("/", "_")
    stray = sorted(p.name for p in DEFAULT_CLIENT_CACHE.glob("*") if mangled in p.name)
    assert not stray, f"client cache written outside the test's store: {stray}"
