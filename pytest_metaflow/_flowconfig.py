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
from collections.abc import Iterator, Mapping
from typing import Any

from .errors import ConfigFileNotFoundError, FlowStartError, InvalidFlowError


class _FlowDir(str):
    """Type of :data:`FLOW_DIR`."""

    def __repr__(self) -> str:
        return "FLOW_DIR"


#: ``runner(path, cwd=FLOW_DIR)``: run the flow from its own directory, as
#: ``cd flows && python flow.py run`` would (collected flows always do).
FLOW_DIR = _FlowDir("<the flow file's directory>")

CONFIG_KWARGS = ("config", "config_value")


def resolve_cwd(cwd: str | None, flow_file: str) -> str | None:
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


def normalize(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``config=``/``config_value=`` given as dicts become Metaflow's list of ``(name, value)``."""
    for key in CONFIG_KWARGS:
        if kwargs.get(key) is not None:
            kwargs[key] = _pairs(kwargs[key])
    return kwargs


def _config_params(flow_cls: Any) -> list[Any]:
    try:
        return [p for _, p in flow_cls._get_parameters() if getattr(p, "IS_CONFIG_PARAMETER", False)]
    except Exception:  # an internal API: never fail a run because it moved
        return []


def _not_found(
    name: str, path: str, cwd: str, flow_dir: str, default: bool, resume: bool = False
) -> ConfigFileNotFoundError:
    tried = os.path.join(cwd, path)
    what = "default config file" if default else "config file"
    lines = [f"{what} {path!r} of Config {name!r} not found: tried {tried} (the run's working directory is {cwd})"]
    if resume:
        lines.append(
            "resume takes the configs of the origin run, yet Metaflow still reads the Configs' "
            "default files (and fails with a KeyError without them)"
        )
    if not os.path.isabs(path) and os.path.isfile(os.path.join(flow_dir, path)):
        lines.append(
            "it exists next to the flow file: run from there with "
            "runner(flow, cwd=FLOW_DIR)  (from pytest_metaflow import FLOW_DIR)"
        )
    elif not os.path.isabs(path):
        lines.append("relative config paths resolve from cwd=: pass cwd=... or an absolute path")
    return ConfigFileNotFoundError("\n".join(lines))


def check_configs(flow_cls: Any, kwargs: Mapping[str, Any], cwd: str, flow_file: str, resume: bool = False) -> None:
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
            raise _not_found(param.name, default, cwd, flow_dir, default=True, resume=resume)


@contextlib.contextmanager
def for_resume(runner: Any) -> Iterator[None]:
    """Let ``resume`` work on a runner built with ``config=``/``config_value=``.

    Metaflow refuses ``--config``/``--config-value`` with ``resume`` (a resumed
    run takes its configs from the origin run), yet the Runner still resolves
    the configs in this process to build the command's parameters, reading the
    Configs' default files when none is given. So the configs are kept for that
    resolution and left out of the command line.
    """
    from metaflow.runner import click_api

    flow_cls = click_api.extract_flow_class_from_file(runner.flow_file)  # cached module
    check_configs(flow_cls, {}, runner.cwd, runner.flow_file, resume=True)
    if not any(runner.top_level_kwargs.get(k) is not None for k in CONFIG_KWARGS):
        yield
        return
    api = runner.api

    def api_without_config_options(**kwargs: Any) -> Any:
        command = api(**kwargs)
        try:
            command._compute_flow_parameters()  # cached on the object: resolved with the configs
            options = command._chain[0][command._API_NAME]["options"]
        except (AttributeError, KeyError, IndexError, TypeError):  # Metaflow internals moved
            return api(**{k: v for k, v in kwargs.items() if k not in CONFIG_KWARGS})
        for key in ("config", "config-value", "config_value"):
            options.pop(key, None)
        return command

    runner.api = api_without_config_options
    try:
        yield
    finally:
        runner.api = api


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


def case_kwargs(config: Mapping[str, Any] | None, config_value: Mapping[str, Any] | None) -> dict[str, Any]:
    """Top-level Runner kwargs for a collected case's ``config``/``config_value``."""
    out: dict[str, Any] = {}
    if config:
        out["config"] = [(str(k), str(v)) for k, v in config.items()]
    if config_value:
        out["config_value"] = [(str(k), v) for k, v in config_value.items()]
    return out
