"""How the runs a test starts launch their tasks: ``fork`` (a per-run task zygote) or ``exec``.

The launcher itself runs inside the flow processes, in the plugin's Metaflow
extension (``_mfext/pytest_metaflow_launcher.py``); the plugin only chooses it, by one
environment key in every run's environment. docs/performance.md ("Task launcher")
says what it does and every difference it leaves.
"""

from __future__ import annotations

import os
import sys
from typing import Any

LAUNCHER_VAR = "PYTEST_METAFLOW_LAUNCHER"
CHOICES = ("fork", "exec")
HELP = (
    "how flow runs start their tasks: fork: from a warm per-run zygote (Linux only; falls back "
    "to exec for any task it cannot reproduce exactly); exec: a fresh interpreter per task, "
    "like Metaflow. Default: fork on Linux. @pytest.mark.metaflow(launcher=...) and "
    "runner(..., launcher=...) win"
)


def default() -> str:
    """The launcher when no option says: ``$PYTEST_METAFLOW_LAUNCHER`` if set, else ``fork`` on Linux.

    The environment variable reaches pytest sessions that ``PYTEST_ADDOPTS`` does not
    (pytester clears it for the sessions it starts): CI's launcher-off pass sets it.
    """
    value = os.environ.get(LAUNCHER_VAR, "")
    if value:
        return validate(value, f"${LAUNCHER_VAR}")
    return "fork" if sys.platform.startswith("linux") else "exec"


def validate(value: Any, source: str) -> str:
    """``value`` if it is a launcher name, else ``ValueError`` naming ``source``."""
    if value not in CHOICES:
        raise ValueError(f"{source}: expected one of {', '.join(CHOICES)}, got {value!r}")
    return str(value)


def effective(mode: str) -> str:
    """What ``mode`` does on this platform (``fork`` asked for off Linux is ``exec``)."""
    return "fork" if mode == "fork" and sys.platform.startswith("linux") else "exec"


def env(mode: str | None) -> dict[str, str]:
    """The environment key that selects ``mode`` in a run's processes (empty for ``None``)."""
    return {} if mode is None else {LAUNCHER_VAR: effective(mode)}


SERVER_KNOB = "PYTEST_METAFLOW_RUNTIME_SERVER"  # "0": fork-mode runs start fresh runtimes


def server_enabled() -> bool:
    """Whether fork-mode runs may use the runtime server (``PYTEST_METAFLOW_RUNTIME_SERVER=0`` says no)."""
    return sys.platform.startswith("linux") and os.environ.get(SERVER_KNOB, "1").strip().lower() not in (
        "0",
        "off",
        "no",
        "false",
    )


def describe(mode: str) -> str:
    """The report header's words for ``mode``: the launcher, and for ``fork`` whether runtimes are served."""
    mode = effective(mode)
    if mode == "exec":
        return "exec"
    return f"fork, runtime server {'on' if server_enabled() else f'off (${SERVER_KNOB})'}"
