"""What the plugin knows about flow files, read without importing them.

One place decides "is this a runnable flow file" for every entry point
(``runner``, ``runner_factory``, ``--metaflow-collect``): the file parses, and
it has an ``if __name__ == "__main__":`` block, the only place Metaflow starts a
run from. A module that merely defines a FlowSpec subclass (a base flow meant
for inheritance) is not a flow. Source is decoded the way Python decodes it
(PEP 263 coding cookie, BOM), and every way of failing to read a file is a
one-line plugin error.
"""

from __future__ import annotations

import ast
import errno
import io
import os
import tokenize
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import FlowFileNotFoundError, InvalidFlowError

_MAIN_BLOCK_HINT = 'if __name__ == "__main__":\n    YourFlow()'


@dataclass(frozen=True)
class FlowFileInfo:
    """What the AST of a file says about it as a flow file."""

    path: str
    tree: ast.Module | None  # None: the file does not parse
    flow: str | None  # the class the __main__ block starts, else the last FlowSpec subclass
    lineno: int
    has_main: bool
    syntax_error: SyntaxError | None = None

    @property
    def is_flow(self) -> bool:
        """A runnable flow file: a ``__main__`` block, and a flow class it can start."""
        return self.has_main and self.flow is not None


def _loop_or_missing(candidate: Path) -> str | None:
    """Why ``candidate`` cannot be a flow file, ``None`` when it simply does not exist."""
    try:
        os.stat(candidate)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return f"flow file {candidate} is a symbolic link loop"
        return None
    if candidate.is_dir():
        return f"flow file {candidate} is a directory, not a Python file"
    return None


def locate(flow_file: str | os.PathLike[str], search_dirs: Iterable[Path]) -> str:
    """Absolute path of ``flow_file``; relative names are tried in each of ``search_dirs``."""
    path = Path(flow_file)
    candidates = [path] if path.is_absolute() else [Path(d) / path for d in search_dirs]
    tried: list[Path] = []
    for candidate in candidates:
        try:
            candidate = candidate.resolve()
        except (OSError, RuntimeError):  # Python < 3.13 raises on a symlink loop
            candidate = Path(os.path.abspath(candidate))
        if candidate not in tried:
            tried.append(candidate)
    for candidate in tried:
        if candidate.is_file():
            return str(candidate)
    for candidate in tried:
        why = _loop_or_missing(candidate)
        if why:
            raise InvalidFlowError(why)
    raise FlowFileNotFoundError(
        f"flow file {str(flow_file)!r} not found; tried:\n" + "\n".join(f"  {p}" for p in tried)
    )


def read_source(path: str | os.PathLike[str]) -> str:
    """The text of a Python file, decoded as Python decodes it (coding cookie, BOM, else UTF-8).

    Raises :class:`InvalidFlowError` (one line) when the file cannot be read or
    decoded, and :class:`FlowFileNotFoundError` when it is gone.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise FlowFileNotFoundError(f"flow file {path} not found") from None
    except OSError as e:
        why = _loop_or_missing(Path(path)) or f"flow file {path} cannot be read: {e.strerror or e}"
        raise InvalidFlowError(why) from None
    return decode(raw, str(path))


def decode(raw: bytes, path: str) -> str:
    """Decode Python source bytes as the interpreter does; one-line error if it cannot."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
    except SyntaxError as e:  # unknown codec in the cookie, BOM and cookie disagree
        raise InvalidFlowError(f"flow file {path}: {e.msg if hasattr(e, 'msg') else e}") from None
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InvalidFlowError(
            f"flow file {path} is not valid {encoding} (byte {raw[e.start]:#04x} on line {line}); "
            "save it as UTF-8 or declare its encoding with a coding cookie (PEP 263), "
            "e.g. '# -*- coding: latin-1 -*-' on its first line"
        ) from None
    # Universal newlines and no BOM, as tokenize.open() would hand it to the compiler.
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def is_main_guard(node: ast.stmt) -> bool:
    """``if __name__ == "__main__":`` (either operand order)."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    if len(node.test.ops) != 1 or not isinstance(node.test.ops[0], ast.Eq):
        return False
    parts = [node.test.left, *node.test.comparators]
    names = {p.id for p in parts if isinstance(p, ast.Name)}
    consts = {p.value for p in parts if isinstance(p, ast.Constant)}
    return "__name__" in names and "__main__" in consts


def _flow_class(tree: ast.Module, mains: list[ast.If]) -> ast.ClassDef | None:
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    # The class the __main__ block starts is the flow (also when its base is imported).
    for block in mains:
        for call in ast.walk(block):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in classes:
                return classes[call.func.id]
    flows: dict[str, Any] = {}
    changed = True
    while changed:  # FlowSpec subclasses, also through base classes defined in the file
        changed = False
        for name, cls in classes.items():
            bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", None) for b in cls.bases}
            if name not in flows and bases & ({"FlowSpec"} | set(flows)):
                flows[name] = cls
                changed = True
    return list(flows.values())[-1] if flows else None


def inspect_source(source: str, path: str) -> FlowFileInfo:
    """Parse ``source`` and say whether it is a runnable flow file (see the module docstring)."""
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as e:
        # Only a file that looks like a flow is one; running it reports the error.
        looks = "FlowSpec" in source and "__main__" in source
        return FlowFileInfo(path, None, Path(path).stem if looks else None, 1, looks, e)
    mains = [node for node in tree.body if is_main_guard(node)]
    cls = _flow_class(tree, mains)  # type: ignore[arg-type]
    return FlowFileInfo(path, tree, cls.name if cls else None, cls.lineno if cls else 1, bool(mains))


def inspect(path: str | os.PathLike[str]) -> FlowFileInfo:
    """:func:`inspect_source` of a file, read as Python reads it."""
    return inspect_source(read_source(path), str(path))


def check_source(source: str, path: str) -> FlowFileInfo:
    """Raise :class:`InvalidFlowError` unless ``source`` is a runnable flow file.

    Without the ``__main__`` block Metaflow's child exits without starting the
    run and the parent waits ``file_read_timeout`` (an hour by default).
    """
    info = inspect_source(source, path)
    e = info.syntax_error
    if e is not None:
        line = (e.text or "").rstrip()
        raise InvalidFlowError(f"syntax error in flow file {path}, line {e.lineno}: {e.msg}\n    {line}")
    if not info.has_main:
        what = f"defines {info.flow} but " if info.flow else ""
        raise InvalidFlowError(
            f'flow file {path} {what}has no `if __name__ == "__main__":` block; Metaflow '
            "starts a run only from it (a module without one is a base flow, not a flow). "
            f"Add at the end of the file:\n\n{_MAIN_BLOCK_HINT}"
        )
    return info


def check(path: str) -> FlowFileInfo:
    """:func:`check_source` of a file, read as Python reads it."""
    return check_source(read_source(path), path)


def package_root(flow_file: str) -> str | None:
    """The directory above the outermost package holding ``flow_file``, ``None`` outside packages.

    Like pytest's ``prepend`` import mode for test modules: a flow inside a
    package may import from it by absolute name (``from mypkg.helpers import x``).
    """
    directory = os.path.dirname(os.path.abspath(flow_file))
    root = None
    while os.path.isfile(os.path.join(directory, "__init__.py")):
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        root, directory = parent, parent
    return root


def import_dirs(flow_file: str) -> tuple[str, ...]:
    """Directories a flow's imports resolve from: its own (as ``python flow.py``), then its package root."""
    own = os.path.dirname(os.path.abspath(flow_file))
    root = package_root(flow_file)
    return (own, root) if root else (own,)


def loaded_flow_class(module: Any, base: type) -> type | None:
    """The one ``base`` subclass defined in the imported flow ``module`` (``None``: not exactly one)."""
    if module is None:
        return None
    found = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, base) and v.__module__ == module.__name__
    ]
    return found[0] if len(found) == 1 else None


# -- what a flow file declares for --metaflow-collect (read with ast, never imported) --

CASES_VAR = "PYTEST_METAFLOW"
CASE_KEYS = (
    "params",
    "expect",
    "step",
    "exception",
    "match",
    "skip",
    "marks",
    "timeout",
    "env",
    "config",
    "config_value",
)


@dataclass(frozen=True)
class FlowCase:
    """One way of running a collected flow, declared in ``PYTEST_METAFLOW``."""

    name: str | None
    params: dict[str, Any] = field(default_factory=dict)
    expect: str = "success"
    step: str | None = None
    exception: str | None = None
    match: str | None = None
    skip: str | None = None
    marks: tuple[str, ...] = ()
    timeout: float | None = None
    env: dict[str, str] = field(default_factory=dict)
    config: dict[str, str] = field(default_factory=dict)
    config_value: dict[str, Any] = field(default_factory=dict)


def _case(name: str | None, spec: Any, where: str) -> FlowCase:
    if not isinstance(spec, dict):
        raise InvalidFlowError(f"{where}: a case must be a dict, got {spec!r}")
    unknown = sorted(set(spec) - set(CASE_KEYS))
    if unknown:
        raise InvalidFlowError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(CASE_KEYS)}"
        )
    if spec.get("expect", "success") not in ("success", "failure"):
        raise InvalidFlowError(f"{where}: 'expect' must be 'success' or 'failure', got {spec['expect']!r}")
    for key, kind in (
        ("params", dict),
        ("env", dict),
        ("config", dict),
        ("config_value", dict),
        ("marks", (list, tuple)),
    ):
        if key in spec and not isinstance(spec[key], kind):
            raise InvalidFlowError(
                f"{where}: {key!r} must be a {'dict' if kind is dict else 'list'}, got {spec[key]!r}"
            )
    timeout = spec.get("timeout")
    if timeout is not None:
        from ._settings import parse_timeout  # the one rule for run timeouts (0: no limit)

        try:
            parse_timeout(timeout, f"{where}: 'timeout'")
        except ValueError as e:
            raise InvalidFlowError(str(e)) from None
        timeout = float(timeout)
    skip = spec.get("skip")
    return FlowCase(
        name=name,
        params=dict(spec.get("params", {})),
        expect=spec.get("expect", "success"),
        step=spec.get("step"),
        exception=spec.get("exception"),
        match=spec.get("match"),
        skip=(skip if isinstance(skip, str) else "skipped in PYTEST_METAFLOW") if skip else None,
        marks=tuple(spec.get("marks", ())),
        timeout=timeout,
        env={str(k): str(v) for k, v in spec.get("env", {}).items()},
        config={str(k): str(v) for k, v in spec.get("config", {}).items()},
        config_value=dict(spec.get("config_value", {})),
    )


def _cases(tree: ast.Module, path: str) -> list[FlowCase]:
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        value = getattr(node, "value", None)
        if any(isinstance(t, ast.Name) and t.id == CASES_VAR for t in targets) and value is not None:
            where = f"{path}:{node.lineno}: {CASES_VAR}"
            try:
                config = ast.literal_eval(value)
            except ValueError:
                raise InvalidFlowError(
                    f"{where} must be a literal (dicts, lists, strings, numbers): it is read without importing the flow"
                ) from None
            if not isinstance(config, dict):
                raise InvalidFlowError(f"{where} must be a dict, got {type(config).__name__}")
            cases = config.pop("cases", None)
            if cases is None:
                return [_case(None, config, where)]
            if not isinstance(cases, dict) or not cases:
                raise InvalidFlowError(f"{where}: 'cases' must be a non-empty dict of case name to case")
            return [
                _case(str(name), {**config, **(spec or {})}, f"{where}['cases'][{name!r}]")
                for name, spec in cases.items()
            ]
    return [FlowCase(name=None)]


def inspect_flow_file(path: str | Path) -> tuple[str, int, list[FlowCase]] | None:
    """``(flow class name, its line, cases)`` for a runnable flow file, ``None`` for any other file.

    Raises :class:`InvalidFlowError` for a file that cannot be decoded, or a bad
    ``PYTEST_METAFLOW`` declaration.
    """
    info = inspect(path)
    if not info.is_flow or info.flow is None:
        return None
    cases = _cases(info.tree, str(path)) if info.tree is not None else [FlowCase(name=None)]
    return info.flow, info.lineno, cases
