"""Shared fixtures of the plugin's own tests.

Tests that run flows use ``pytester.runpytest_subprocess`` (a real pytest in a
real process, as a user would run it) on test files written into a temp dir
together with the flows from ``tests/flows/``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

FLOWS = Path(__file__).parent / "flows"


@pytest.fixture
def flow_pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester dir holding a copy of every flow in ``tests/flows/``."""
    for flow in FLOWS.glob("*.py"):
        shutil.copy(flow, pytester.path / flow.name)
    # The inner pytest must not inherit our -W error/-p options for its own reasons.
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    return pytester


@pytest.fixture(autouse=True)
def _no_user_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every self-test the way CI runs: no USER in the environment."""
    for var in ("USER", "USERNAME", "SUDO_USER", "METAFLOW_USER"):
        monkeypatch.delenv(var, raising=False)
