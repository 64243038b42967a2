"""Flow files as tests: ``--metaflow-collect=GLOB`` turns each matching flow file
into one test item per case.

A flow file is recognised with :mod:`ast` by the one rule of
:mod:`._flowfile` (collection never imports metaflow or the flow): it has an
``if __name__ == "__main__":`` block and a flow class for it to start; a module
that only defines a base flow is not collected. Cases come from an optional
module-level literal::

    PYTEST_METAFLOW = {
        "cases": {
            "small": {"params": {"epochs": 1}},
            "bad": {"params": {"threshold": 2.0}, "expect": "failure", "step": "check"},
            "gpu": {"skip": "needs a GPU"},
        }
    }

read with :func:`ast.literal_eval`. Keys at the top level are defaults for
every case.
"""

from __future__ import annotations

import ast
import contextlib
import fnmatch
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from . import _flowconfig, _flowfile
from .errors import InvalidFlowError, PytestMetaflowError

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
_KILL_EVERY = 0.5


class FlowCaseFailed(Exception):
    """A collected flow case did not behave as declared; the message is the report."""


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


def matches(path: Path, rootpath: Path, globs: Sequence[str]) -> bool:
    """Whether ``path`` matches a glob: against its name, or (glob with ``/``) its rootdir-relative path."""
    try:
        rel = path.relative_to(rootpath).as_posix()
    except ValueError:
        rel = path.as_posix()
    return any(fnmatch.fnmatch(rel if "/" in g else path.name, g) for g in globs)


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
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise InvalidFlowError(f"{where}: 'timeout' must be a positive number of seconds, got {timeout!r}")
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
    info = _flowfile.inspect(path)
    if not info.is_flow or info.flow is None:
        return None
    cases = _cases(info.tree, str(path)) if info.tree is not None else [FlowCase(name=None)]
    return info.flow, info.lineno, cases


def _is_test_module(path: Path, config: pytest.Config) -> bool:
    return any(fnmatch.fnmatch(path.name, pattern) for pattern in config.getini("python_files"))


class FlowFile(pytest.File):
    """A flow file collected by ``--metaflow-collect``: one item per case."""

    def collect(self) -> Iterable[pytest.Item]:
        try:
            found = inspect_flow_file(self.path)
        except InvalidFlowError as e:
            if not _unreadable_flow(self.path):
                raise
            # A flow file that cannot be decoded: its item fails with the one-line
            # reason; the session and the other flows go on.
            return [FlowItem.broken(self, self.path.stem, e)]
        if found is None:
            return []
        flow, lineno, cases = found
        return [FlowItem.from_case(self, flow, lineno, case) for case in cases]

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:  # type: ignore[override]
        if isinstance(excinfo.value, PytestMetaflowError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


def _unreadable_flow(path: Path) -> bool:
    """An undecodable file that still looks like a flow (so it is reported, not skipped)."""
    try:
        raw = path.read_bytes()
    except OSError:
        return True
    try:
        _flowfile.decode(raw, str(path))
    except InvalidFlowError:
        return b"FlowSpec" in raw and b"__main__" in raw
    return False


def _case_function(path: str, case: FlowCase) -> Any:
    # The item is a pytest Function so that fixtures (the hermetic store,
    # autouse fixtures of the user's conftest) apply as to any test.
    def run_flow_case(runner: Any) -> None:
        run_case(runner, path, case)

    return run_flow_case


class FlowItem(pytest.Function):
    """One case of a collected flow file, run in the test's hermetic store."""

    flow: str
    case: FlowCase
    lineno: int

    @classmethod
    def from_case(cls, parent: FlowFile, flow: str, lineno: int, case: FlowCase) -> FlowItem:
        name = flow if case.name is None else f"{flow}[{case.name}]"
        item = cls.from_parent(parent, name=name, callobj=_case_function(str(parent.path), case))
        item.flow, item.case, item.lineno = flow, case, lineno
        node_id = getattr(item, "_id", None)
        if case.name is not None and hasattr(node_id, "params") and hasattr(type(node_id), "parse"):
            # pytest >= 9.1 keeps ids structured ("[case]" as params) and --lf
            # compares them with ids parsed from the cache: build ours the same way.
            item._id = type(node_id).parse(str(node_id))  # type: ignore[union-attr]
        for mark in case.marks:
            item.add_marker(mark)
        if case.skip:
            item.add_marker(pytest.mark.skip(reason=case.skip))
        return item

    @classmethod
    def broken(cls, parent: FlowFile, name: str, error: Exception) -> FlowItem:
        """An item that fails with ``error`` (a flow file that cannot be read)."""
        message = str(error)

        def unreadable_flow() -> None:
            raise FlowCaseFailed(message)

        item = cls.from_parent(parent, name=name, callobj=unreadable_flow)
        item.flow, item.case, item.lineno = name, FlowCase(name=None), 1
        return item

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, self.lineno - 1, self.name

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:  # type: ignore[override]
        # pytest >= 9 calls Function.repr_failure(excinfo) with no style argument.
        if isinstance(excinfo.value, FlowCaseFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


@dataclass
class _Deadline:
    """Kills a runner's processes once ``timeout`` has passed (and keeps killing until stopped)."""

    runner: Any
    timeout: float
    fired: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)

    def _watch(self) -> None:
        if self._stop.wait(self.timeout):
            return
        self.fired = True
        while True:  # a process started just after a kill is killed on the next round
            self.runner.kill()
            if self._stop.wait(_KILL_EVERY):
                return

    def __enter__(self) -> _Deadline:
        threading.Thread(target=self._watch, name="pytest-metaflow-case-timeout", daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()


def run_case(runner_fixture: Any, path: str, case: FlowCase) -> None:
    """Run one case with the ``runner`` fixture; raise :class:`FlowCaseFailed` when it misbehaves."""
    from . import reporting
    from .assertions import assert_run_failed, assert_run_succeeded

    # From the flow's directory: relative paths in the flow (IncludeFile
    # defaults, data files) resolve the same whatever directory pytest runs in.
    deadline: _Deadline | None = None
    try:
        runner = runner_fixture(
            path,
            env=case.env or None,
            cwd=os.path.dirname(path),
            **_flowconfig.case_kwargs(case.config, case.config_value),
        )
        deadline = _Deadline(runner, case.timeout) if case.timeout else None
        with deadline or contextlib.nullcontext():
            result = runner.run(**case.params)
    except Exception as e:
        # Anything short of an interrupt is this item's failure, never the session's:
        # start errors, parameter validation (Metaflow's TypeError/ValueError), a
        # flow failing at import, a Config click refuses.
        if deadline is not None and deadline.fired:
            raise FlowCaseFailed(
                f"the run did not finish within the case's timeout of {case.timeout} s and was killed"
            ) from None
        given = [
            f"{k} {v!r}"
            for k, v in (("params", case.params), ("config", case.config), ("config_value", case.config_value))
            if v
        ]
        with_ = f" with {', '.join(given)}" if given else ""
        raise FlowCaseFailed(f"could not run the flow{with_}:\n{type(e).__name__}: {e}") from None
    if deadline is not None and deadline.fired:
        raise FlowCaseFailed(
            f"the run did not finish within the case's timeout of {case.timeout} s and was killed\n"
            + reporting.describe(result)
        )
    try:
        if case.expect == "failure":
            assert_run_failed(result, step=case.step, exception=case.exception, match=case.match)
        else:
            assert_run_succeeded(result)
    except AssertionError as e:
        raise FlowCaseFailed(str(e)) from None


def collect_file(file_path: Path, parent: pytest.Collector, globs: Sequence[str]) -> FlowFile | None:
    """The ``pytest_collect_file`` logic: a :class:`FlowFile` for a matching non-test ``.py`` file."""
    config = parent.config
    if not globs or file_path.suffix != ".py" or _is_test_module(file_path, config):
        return None
    if not matches(file_path, config.rootpath, globs):
        return None
    return FlowFile.from_parent(parent, path=file_path)
