"""``spin(artifacts={...})``: the artifacts module Metaflow's spin expects, written for the user.

Metaflow's ``spin --artifacts-module FILE`` executes FILE and reads its
``ARTIFACTS`` dict (``metaflow/util.py: read_artifacts_module``): artifact name
to value, or, for a join step, input pathspec (``run_id/step/task_id``) to such
a dict. Small values that survive ``repr`` -> ``ast.literal_eval`` are written
as literals, so the file reads like what a user would write; anything else
(or anything big) is pickled, streamed into a side file ``<module>.pickle``
that the module loads: a 100 MB array costs about 100 MB of disk, not a
400 MB ``repr`` in memory and in the source the spin process compiles.
"""

from __future__ import annotations

import ast
import contextlib
import itertools
import pickle
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Callable, TypeVar

T = TypeVar("T")
_counter = itertools.count()
# Literals up to this many characters of repr go into the module; bigger ones are pickled.
LITERAL_BUDGET = 64 * 1024

_LOADER = """\
def _unpickle(path, names):
    # Classes pickled by reference are looked up on the test process's sys.path
    # (test modules, conftest dirs) after the flow's own.
    sys.path.extend(p for p in SYS_PATH if p not in sys.path)
    values = {}
    with open(path, "rb") as f:
        for name in names:
            try:
                values[name] = pickle.load(f)
            except Exception as e:
                raise RuntimeError(
                    "pytest-metaflow: artifact %r passed to spin(artifacts=...) cannot be unpickled in the "
                    "spin process (%s: %s); define its class in a module importable from the flow's directory"
                    % (name, type(e).__name__, e)
                ) from e
    return values
"""


def _small_literal(value: Any, budget: list[int]) -> bool:
    """Whether ``value`` is made of literal types only and small (a cheap walk, before any ``repr``)."""
    budget[0] -= 1
    if budget[0] < 0:
        return False
    if value is None or type(value) in (bool, int, float, complex):
        return True
    if type(value) in (str, bytes):
        budget[0] -= len(value)
        return budget[0] >= 0
    if type(value) in (list, tuple, set, frozenset):
        return all(_small_literal(v, budget) for v in value)
    if type(value) is dict:
        return all(_small_literal(k, budget) and _small_literal(v, budget) for k, v in value.items())
    return False


def _literal(value: Any) -> bool:
    if not _small_literal(value, [LITERAL_BUDGET]):
        return False
    try:
        text = repr(value)
        return type(ast.literal_eval(text)) is type(value) and ast.literal_eval(text) == value
    except Exception:  # not a literal (nan, frozenset(...)), or comparing fails
        return False


def _check_names(artifacts: Mapping[str, Any]) -> None:
    if not isinstance(artifacts, Mapping):
        raise TypeError(f"spin(artifacts=...) takes a dict of artifact name to value, got {type(artifacts).__name__}")
    for name in artifacts:
        if not isinstance(name, str):
            raise TypeError(f"spin(artifacts=...): keys must be artifact names (str), got {name!r}")


def _module(artifacts: Mapping[str, Any], pickle_path: str | None, pickled: Iterable[str]) -> str:
    names = list(pickled)
    lines = [
        "# Written by pytest-metaflow for spin(artifacts=...).",
        "import pickle",
        "import sys",
        "",
        f"SYS_PATH = {[p for p in sys.path if isinstance(p, str)]!r}",
        "",
        _LOADER,
        f"_PICKLED = _unpickle({pickle_path!r}, {names!r})" if names else "_PICKLED = {}",
        "",
        "ARTIFACTS = {",
    ]
    for name, value in artifacts.items():
        lines.append(f"    {name!r}: {'_PICKLED[' + repr(name) + ']' if name in names else repr(value)},")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dump(artifacts: Mapping[str, Any], path: Path) -> list[str]:
    """Pickle the values that are not small literals into ``path``, one after another; return their names."""
    names = [name for name, value in artifacts.items() if not _literal(value)]
    if not names:
        return []
    with open(path, "wb") as f:
        for name in names:
            value = artifacts[name]
            try:
                pickle.dump(value, f, protocol=5)  # streamed into the file; 5 writes bytearrays without a copy
            except Exception as e:
                raise TypeError(
                    f"spin(artifacts=...): artifact {name!r} of type {type(value).__name__} cannot be passed to the "
                    f"spin process: it is not a Python literal and cannot be pickled ({type(e).__name__}: {e})"
                ) from None
    return names


def artifacts_module_source(artifacts: Mapping[str, Any], pickle_path: Path | None = None) -> str:
    """Python source defining ``ARTIFACTS`` with the values of ``artifacts``.

    Values that are not small literals are pickled into ``pickle_path`` (required
    then), which the source loads when executed.
    """
    _check_names(artifacts)
    if pickle_path is None:
        if any(not _literal(v) for v in artifacts.values()):
            raise ValueError("artifacts_module_source(): values to pickle need a pickle_path")
        return _module(artifacts, None, [])
    names = _dump(artifacts, pickle_path)
    return _module(artifacts, str(pickle_path), names)


def write_artifacts_module(artifacts: Mapping[str, Any], directory: Path, tag: str) -> tuple[Path, list[Path]]:
    """Write the module (and its pickle side file) into ``directory``; return the module and every file written."""
    _check_names(artifacts)
    stem = f"spin_artifacts_{tag.replace('/', '_')}_{next(_counter)}"
    path = Path(directory) / f"{stem}.py"
    pickle_path = Path(directory) / f"{stem}.pickle"
    try:
        path.write_text(artifacts_module_source(artifacts, pickle_path))
    except BaseException:
        pickle_path.unlink(missing_ok=True)
        raise
    return path, [path, pickle_path]


# --- which artifacts a step reads -------------------------------------------


def _reads(tree: ast.AST) -> tuple[set[str], bool]:
    """Attribute names read on ``self`` in ``tree``, and whether it reads ``self`` dynamically."""
    names: set[str] = set()
    dynamic = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
            names.add(node.attr)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "vars", "hasattr")
        ):
            if node.args and isinstance(node.args[0], ast.Name) and node.args[0].id == "self":
                dynamic = True
        elif isinstance(node, ast.Name) and node.id == "self" and not isinstance(getattr(node, "ctx", None), ast.Load):
            dynamic = True
    return names, dynamic


def unused_artifacts(flow_cls: type, step_name: str, names: Iterable[str]) -> list[str]:
    """Names in ``names`` that step ``step_name`` of ``flow_cls`` can never read.

    What a step can read: ``self.<name>`` in the step or in any non-step method
    of the class and its bases (helpers the step may call). A join step reads
    its inputs' artifacts as ``input.<name>``: any attribute read counts there.
    Undecidable cases (``getattr(self, ...)``, ``vars(self)``, no source) give ``[]``.
    """
    import inspect
    import textwrap

    readable: set[str] = set()
    step = getattr(flow_cls, step_name, None)
    if step is None:
        return []
    for klass in inspect.getmro(flow_cls):
        if klass is object or klass.__module__.startswith("metaflow."):
            continue
        for attr, member in vars(klass).items():
            func = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
            if not callable(func) or (getattr(func, "is_step", False) and attr != step_name):
                continue
            try:
                tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
            except (OSError, TypeError, SyntaxError):
                if attr == step_name:
                    return []
                continue
            names_read, dynamic = _reads(tree)
            if dynamic:
                return []
            readable |= names_read
            if attr == step_name and _is_join(tree):
                readable |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    return sorted(n for n in names if n not in readable)


def _is_join(tree: ast.AST) -> bool:
    funcs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    return bool(funcs) and len(funcs[0].args.args) >= 2


def warn_unused(
    flow_cls: type | None,
    pathspec: str,
    artifacts: Mapping[str, Any],
    stacklevel: int,
    warn: Callable[..., None] = warnings.warn,
) -> None:
    """Warn about ``artifacts`` keys the spun step cannot read (they would be silently ignored)."""
    if flow_cls is None:
        return
    parts = pathspec.split("/")
    step = next((p for p in parts if not p.isdigit() and p != flow_cls.__name__ and hasattr(flow_cls, p)), None)
    if step is None:
        return
    names = [k for k in artifacts if "/" not in k]  # join steps key by input pathspec
    for inner in (v for k, v in artifacts.items() if "/" in k and isinstance(v, Mapping)):
        names.extend(n for n in inner if isinstance(n, str))
    unused = unused_artifacts(flow_cls, step, dict.fromkeys(names))
    if unused:
        from .errors import PytestMetaflowWarning

        warn(
            PytestMetaflowWarning(
                f"spin(artifacts=...): step '{step}' of {flow_cls.__name__} never reads "
                f"{', '.join(repr(n) for n in unused)} (no self.<name> in the step or the flow's helper methods); "
                "the value is ignored. A typo?"
            ),
            stacklevel=stacklevel,
        )


# -- the runner's side of spin: inputs in, results out ---------------------------

_NOT_PERSISTED = (
    "spin() was called without persist=True, so the spun task {pathspec} keeps no artifacts; "
    "pass persist=True to read {what}"
)


class _NoArtifacts:
    """``task.data`` of a task spun without ``persist=True``: says how to get artifacts."""

    def __init__(self, task: Any, data: Any) -> None:
        self._task = task
        self._data = data

    def __getattr__(self, name: str) -> Any:
        try:
            return getattr(self._data, name)
        except AttributeError:
            raise AttributeError(_NOT_PERSISTED.format(pathspec=self._task.pathspec, what=f"'{name}'")) from None


_unpersisted_class: list[type] = []


def _unpersisted_task_class() -> type:
    """A ``metaflow.Task`` subclass whose artifact reads say to pass ``persist=True`` (made on first use)."""
    if not _unpersisted_class:
        from metaflow.client.core import Task

        class _UnpersistedTask(Task):
            """A ``metaflow.Task`` spun without ``persist=True``: reading an artifact says to pass it."""

            def __getitem__(self, name: str) -> Any:
                try:
                    return super().__getitem__(name)
                except KeyError:
                    raise KeyError(_NOT_PERSISTED.format(pathspec=self.pathspec, what=f"artifact '{name}'")) from None

            @property
            def data(self) -> Any:
                return _NoArtifacts(self, super().data)

        _unpersisted_class.append(_UnpersistedTask)
    return _unpersisted_class[0]


def mark_unpersisted(result: T, kwargs: Mapping[str, Any]) -> T:
    """``result`` of a spin; its task says how to read artifacts when spun without ``persist=True``."""
    from metaflow.client.core import Task

    task: Any = getattr(result, "task", None)
    if not kwargs.get("persist") and type(task) is Task:
        task.__class__ = _unpersisted_task_class()
        task.spun_without_persist = True  # type: ignore[attr-defined]  # for helpers that list artifacts
    return result


def artifacts_module(
    flow_cls: type | None,
    pathspec: str,
    artifacts: Mapping[str, Any] | None,
    kwargs: dict[str, Any],
    directory: Path,
    tag: str,
) -> list[Path]:
    """Write ``artifacts`` as the module ``kwargs["artifacts_module"]`` names; the files written."""
    if artifacts is None:
        return []
    if kwargs.get("artifacts_module") is not None:
        raise TypeError("spin() takes artifacts= or artifacts_module=, not both")
    # stacklevel: warn_unused < artifacts_module < _runner._artifacts < (async_)spin < the test
    warn_unused(flow_cls, pathspec, artifacts, stacklevel=5)
    module, files = write_artifacts_module(artifacts, directory, tag)
    kwargs["artifacts_module"] = str(module)
    return files


@contextlib.contextmanager
def original_run_store(runner: Any, pathspec: str) -> Iterator[None]:
    """Let the spin process read the original run where it lives.

    The spin child looks the run up in its own local datastore; a run made by
    another fixture (``runner_factory``'s session store, say) lives elsewhere.
    The spun task still goes to this runner's store (``..._SYSROOT_SPIN``).
    """
    from . import _store

    root = _store.root_holding_run(pathspec)
    var = "METAFLOW_DATASTORE_SYSROOT_LOCAL"
    own = runner.env_vars.get(var)
    if root is None or own is None or root == own:
        yield
        return
    runner.env_vars = {**runner.env_vars, var: root}
    try:
        yield
    finally:
        runner.env_vars = {**runner.env_vars, var: own}
