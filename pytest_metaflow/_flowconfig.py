"""Config files and relative paths of a flow run, checked where the test calls.

Metaflow resolves a ``Config`` file, an ``IncludeFile`` default and any
relative data path from the run's working directory (``cwd=``, default: the
current directory, wherever pytest was started). A missing file then surfaces
as a click ``UsageError`` or a child's usage message; these helpers turn it into
a plugin error naming the path tried, the working directory, and the fix.
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Any, Dict, Iterator, List, Mapping, Optional

from .errors import ConfigFileNotFoundError, FlowStartError, InvalidFlowError


class _FlowDir(str):
    """Type of :data:`FLOW_DIR`."""

    def __repr__(self) -> str:
        return "FLOW_DIR"


#: ``runner(path, cwd=FLOW_DIR)``: run the flow from its own directory, as
#: ``cd flows && python flow.py run`` would (collected flows always do).
FLOW_DIR = _FlowDir("<the flow file's directory>")

CONFIG_KWARGS = ("config", "config_value")


def resolve_cwd(cwd: Optional[str], flow_file: str) -> Optional[str]:
    """The run's working directory: :data:`FLOW_DIR` means the flow file's directory."""
    if isinstance(cwd, _FlowDir):
        return os.path.dirname(os.path.abspath(flow_file))
    if cwd is not None and not os.path.isdir(cwd):
        raise InvalidFlowError(f"cwd={cwd!r} is not a directory (from {os.getcwd()})")
    return cwd


def _pairs(value: Any) -> Any:
    # Metaflow takes a list of (name, value) tuples; a dict reads better in a test.
    if isinstance(value, Mapping):
        return [(str(k), v) for k, v in value.items()]
    if isinstance(value, list):
        return [tuple(v) if isinstance(v, list) else v for v in value]
    return value


def normalize(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """``config=``/``config_value=`` given as dicts become Metaflow's list of ``(name, value)``."""
    for key in CONFIG_KWARGS:
        if kwargs.get(key) is not None:
            kwargs[key] = _pairs(kwargs[key])
    return kwargs


def _config_params(flow_cls: Any) -> List[Any]:
    try:
        return [p for _, p in flow_cls._get_parameters() if getattr(p, "IS_CONFIG_PARAMETER", False)]
    except Exception:  # an internal API: never fail a run because it moved
        return []


def _not_found(name: str, path: str, cwd: str, flow_dir: str, default: bool) -> ConfigFileNotFoundError:
    tried = os.path.join(cwd, path)
    what = "default config file" if default else "config file"
    lines = [f"{what} {path!r} of Config {name!r} not found: tried {tried} (the run's working directory is {cwd})"]
    if not os.path.isabs(path) and os.path.isfile(os.path.join(flow_dir, path)):
        lines.append(
            "it exists next to the flow file: run from there with "
            "runner(flow, cwd=FLOW_DIR)  (from pytest_metaflow import FLOW_DIR)"
        )
    elif not os.path.isabs(path):
        lines.append("relative config paths resolve from cwd=: pass cwd=... or an absolute path")
    return ConfigFileNotFoundError("\n".join(lines))


def check_configs(flow_cls: Any, kwargs: Mapping[str, Any], cwd: str, flow_file: str) -> None:
    """Raise :class:`ConfigFileNotFoundError` for a Config file the run could not read.

    Checks the files given with ``config=`` and the file defaults of the flow's
    ``Config`` parameters not overridden by ``config=``/``config_value=``.
    """
    if os.environ.get("METAFLOW_FLOW_CONFIG") or os.environ.get("METAFLOW_FLOW_CONFIG_VALUE"):
        return  # Metaflow takes them from the environment then
    given = dict(kwargs.get("config") or [])
    values = dict(kwargs.get("config_value") or [])
    flow_dir = os.path.dirname(os.path.abspath(flow_file))
    for name, path in given.items():
        if isinstance(path, str) and not os.path.isfile(os.path.join(cwd, path)):
            raise _not_found(name, path, cwd, flow_dir, default=False)
    for param in _config_params(flow_cls):
        if param.name in given or param.name in values or not getattr(param, "_default_is_file", False):
            continue
        default = param.kwargs.get("default")
        if isinstance(default, str) and not os.path.isfile(os.path.join(cwd, default)):
            raise _not_found(param.name, default, cwd, flow_dir, default=True)


@contextlib.contextmanager
def without_configs(runner: Any) -> Iterator[None]:
    """Resume takes a run's configs from the origin run; Metaflow refuses ``--config`` there."""
    saved = {k: runner.top_level_kwargs.pop(k) for k in CONFIG_KWARGS if k in runner.top_level_kwargs}
    try:
        yield
    finally:
        runner.top_level_kwargs.update(saved)


_MISSING_FILE = re.compile(r"could not open file '(?P<path>[^']+)'|No such file or directory: '(?P<path2>[^']+)'")


def with_path_hint(error: FlowStartError, cwd: str, flow_file: str) -> FlowStartError:
    """Add to a start error about a missing relative file where it was looked for, and the fix."""
    match = _MISSING_FILE.search(str(error))
    if match is None:
        return error
    path = match["path"] or match["path2"]
    if os.path.isabs(path):
        return error
    flow_dir = os.path.dirname(os.path.abspath(flow_file))
    hint = f"relative path {path!r} was looked up from the run's working directory {cwd}"
    if os.path.exists(os.path.join(flow_dir, path)) and os.path.abspath(cwd) != flow_dir:
        hint += "; it exists next to the flow file: pass cwd=FLOW_DIR (from pytest_metaflow import FLOW_DIR)"
    else:
        hint += "; pass cwd=... to run from the directory it is relative to"
    error.args = (f"{error.args[0]}\n    {hint}", *error.args[1:])
    return error


def case_kwargs(config: Optional[Mapping[str, Any]], config_value: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """Top-level Runner kwargs for a collected case's ``config``/``config_value``."""
    out: Dict[str, Any] = {}
    if config:
        out["config"] = [(str(k), str(v)) for k, v in config.items()]
    if config_value:
        out["config_value"] = [(str(k), v) for k, v in config_value.items()]
    return out

