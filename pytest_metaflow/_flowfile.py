"""Finding a flow file and catching, before Metaflow does, what would make it hang or crash."""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Iterable, List, Union

from .errors import FlowFileNotFoundError, InvalidFlowError


def locate(flow_file: Union[str, "os.PathLike[str]"], search_dirs: Iterable[Path]) -> str:
    """Absolute path of ``flow_file``; relative names are tried in each of ``search_dirs``."""
    path = Path(flow_file)
    if path.is_absolute():
        tried: List[Path] = [path]
    else:
        tried = []
        for directory in search_dirs:
            candidate = (Path(directory) / path).resolve()
            if candidate not in tried:
                tried.append(candidate)
    for candidate in tried:
        if candidate.is_file():
            return str(candidate)
    raise FlowFileNotFoundError(
        f"flow file {str(flow_file)!r} not found; tried:\n"
        + "\n".join(f"  {p}" for p in tried)
    )


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    parts = [node.test.left, *node.test.comparators]
    names = {p.id for p in parts if isinstance(p, ast.Name)}
    consts = {p.value for p in parts if isinstance(p, ast.Constant)}
    return "__name__" in names and "__main__" in consts


def check(path: str) -> None:
    """Raise :class:`InvalidFlowError` for a syntax error or a missing ``__main__`` guard.

    Without the guard Metaflow's child exits without starting the run and the
    parent waits ``file_read_timeout`` (an hour by default).
    """
    with open(path, encoding="utf-8") as f:
        source = f.read()
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as e:
        line = (e.text or "").rstrip()
        raise InvalidFlowError(
            f"syntax error in flow file {path}, line {e.lineno}: {e.msg}\n    {line}"
        ) from None
    if not any(_is_main_guard(node) for node in tree.body):
        raise InvalidFlowError(
            f"flow file {path} has no `if __name__ == \"__main__\":` block; Metaflow "
            "starts a run only from it. Add at the end of the file:\n\n"
            "if __name__ == \"__main__\":\n    YourFlow()"
        )
