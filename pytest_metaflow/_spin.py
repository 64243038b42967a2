"""``spin(artifacts={...})``: the artifacts module Metaflow's spin expects, written for the user.

Metaflow's ``spin --artifacts-module FILE`` executes FILE and reads its
``ARTIFACTS`` dict (``metaflow/util.py: read_artifacts_module``): artifact name
to value, or, for a join step, input pathspec (``run_id/step/task_id``) to such
a dict. Values that survive ``repr`` -> ``ast.literal_eval`` are written as
literals, so the file reads like what a user would write; anything else is
pickled into the file and unpickled by the spin process.
"""

from __future__ import annotations

import ast
import itertools
import pickle
import sys
from pathlib import Path
from typing import Any, Mapping

_counter = itertools.count()

_PICKLED = '''\
def _unpickle(name, data):
    # Classes pickled by reference are looked up on the test process's sys.path
    # (test modules, conftest dirs) after the flow's own.
    sys.path.extend(p for p in SYS_PATH if p not in sys.path)
    try:
        return pickle.loads(data)
    except Exception as e:
        raise RuntimeError(
            "pytest-metaflow: artifact %r passed to spin(artifacts=...) cannot be unpickled in the "
            "spin process (%s: %s); define its class in a module importable from the flow's directory" % (name, type(e).__name__, e)
        ) from e
'''


def _literal(value: Any) -> bool:
    try:
        text = repr(value)
        return type(ast.literal_eval(text)) is type(value) and ast.literal_eval(text) == value
    except Exception:  # not a literal, or comparing fails (arrays, frames...)
        return False


def _source(name: str, value: Any) -> str:
    if _literal(value):
        return repr(value)
    try:
        data = pickle.dumps(value, protocol=4)
    except Exception as e:
        raise TypeError(
            f"spin(artifacts=...): artifact {name!r} of type {type(value).__name__} cannot be passed to the "
            f"spin process: it is not a Python literal and cannot be pickled ({type(e).__name__}: {e})"
        ) from None
    return f"_unpickle({name!r}, {data!r})"


def artifacts_module_source(artifacts: Mapping[str, Any]) -> str:
    """Python source defining ``ARTIFACTS`` with the values of ``artifacts``."""
    if not isinstance(artifacts, Mapping):
        raise TypeError(f"spin(artifacts=...) takes a dict of artifact name to value, got {type(artifacts).__name__}")
    lines = [
        "# Written by pytest-metaflow for spin(artifacts=...).",
        "import pickle",
        "import sys",
        "",
        f"SYS_PATH = {[p for p in sys.path if isinstance(p, str)]!r}",
        "",
        _PICKLED,
        "ARTIFACTS = {",
    ]
    for name, value in artifacts.items():
        if not isinstance(name, str):
            raise TypeError(f"spin(artifacts=...): keys must be artifact names (str), got {name!r}")
        lines.append(f"    {name!r}: {_source(name, value)},")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_artifacts_module(artifacts: Mapping[str, Any], directory: Path, tag: str) -> Path:
    """Write the module into ``directory`` under a name unique in this process; return its path."""
    path = Path(directory) / f"spin_artifacts_{tag}_{next(_counter)}.py"
    path.write_text(artifacts_module_source(artifacts))
    return path
