"""``pytest-metaflow generate``: step regression tests written from a real run.

For every step of a run, one representative task (the first of a foreach) is
recorded: its inputs (the artifacts of its parent tasks; for a join, per
parent) and its outputs (its own artifacts). A test module is written with one
test per step that spins the step with the recorded inputs and compares what
it produces with the recorded outputs through ``artifact_snapshot``.

Layout under ``--out DIR`` (``<flow>`` is the flow file's name without ``.py``)::

    test_<flow>_steps.py           one test per step (readable; edit at will)
    <flow>_inputs/<step>.py        recorded inputs of each step: INPUTS = {...}
    <flow>_inputs/<step>/<name>.*  inputs that are no Python literal (.npy, .pkl)
    __snapshots__/test_<flow>_steps.ambr   recorded outputs (syrupy)
    __snapshot_blobs__/            large outputs (side files of the snapshots)
"""

from __future__ import annotations

import ast
import os
import pickle
import pprint
import shutil
import tempfile
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _spin, _store, reporting
from ._snapshot_hooks import prune_side_files
from .errors import PytestMetaflowError
from .generated import _index

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
# Inputs whose Python literal is longer than this go to a side file.
LITERAL_LIMIT = 20_000


class GenerateError(PytestMetaflowError):
    """``pytest-metaflow generate`` cannot write the tests (the message says why)."""


@dataclass
class StepRecord:
    """What one step's test needs: its task's inputs and outputs."""

    step: str
    task: str
    index: int | None
    join: bool
    # name -> value; for a join: "parent_step" or "parent_step[index]" -> {name: value}
    inputs: dict[str, Any]
    outputs: dict[str, Any]


@dataclass
class SideFile:
    path: str  # relative to the out dir
    data: bytes


@dataclass
class Planned:
    """Every file to write, and the size of each recorded artifact."""

    files: dict[str, str] = field(default_factory=dict)  # relative path -> text
    side_files: list[SideFile] = field(default_factory=list)
    sizes: list[tuple[int, str]] = field(default_factory=list)  # (bytes, "step: inputs.name")


def parse_assignments(items: Sequence[str], what: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise GenerateError(f"{what} takes NAME=VALUE, got {item!r}")
        pairs.append((name.strip(), value))
    return pairs


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """``K=V`` strings to run keyword arguments: Python literals where they parse, else strings."""
    params: dict[str, Any] = {}
    for name, text in parse_assignments(items, "--params"):
        try:
            params[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            params[name] = text
    return params


# --- recording --------------------------------------------------------------


def _values_of(task: Any, leave_out: AbstractSet[str] = frozenset()) -> dict[str, Any]:
    from ._snapshot import user_artifacts

    return {name: artifact.data for name, artifact in user_artifacts(task).items() if name not in leave_out}


def not_recordable_parameters(run: Any) -> set[str]:
    """Parameters a spun step cannot be fed through ``artifacts=``: ``IncludeFile`` and configs.

    Metaflow's spin re-loads them from the run's parameters and refuses another
    value (``AttributeError: Flow level attributes and Parameters are not
    modifiable``); the base run of the generated module supplies them.
    """
    from ._snapshot import graph_info

    params = graph_info(run).get("parameters", [])
    return {str(p["name"]) for p in params if p.get("type") not in (None, "Parameter")}


def record(run: Any) -> list[StepRecord]:
    """One :class:`StepRecord` per step of a finished run, in execution order."""
    from .generated import input_key, representative_task

    fixed = not_recordable_parameters(run)
    records = []
    for step in reporting.steps(run):
        task = representative_task(run, step.id)
        parents, join = parents_of(run, task)
        inputs: dict[str, Any]
        if join:
            inputs = {input_key(p): _values_of(p, fixed) for p in parents}
        else:
            inputs = _values_of(parents[0], fixed) if parents else {}
        outputs = {name: artifact.data for name, artifact in set_by_step(task, parents, join).items()}
        records.append(StepRecord(step.id, task.pathspec, _index(task), join, inputs, outputs))
    return records


def parents_of(run: Any, task: Any) -> tuple[list[Any], bool]:
    """The tasks ``task`` read its artifacts from, and whether its step is a join.

    The start step reads the run's parameters (the ``_parameters`` task); a
    join's parents come sorted by step and foreach index.
    """
    from ._snapshot import graph_info

    info = graph_info(run)
    step = task.pathspec.split("/")[2]
    if step == info.get("start_step", "start"):
        return [run["_parameters"].task], False
    if info.get("steps", {}).get(step, {}).get("type") == "join":
        return sorted(task.parent_tasks, key=lambda p: (p.parent.id, _index(p) or 0)), True
    return list(task.parent_tasks), False


def set_by_step(task: Any, parents: Sequence[Any], join: bool) -> dict[str, Any]:
    """The artifacts ``task``'s step set, as opposed to those passed down from its parents.

    An artifact with the same content hash as in its parent (for a join: in
    every parent) was passed down. Those are left out of a step's outputs:
    Metaflow's spin persists passed-down artifacts from the original run's
    parent, not from the ``artifacts=`` given, so they would not reflect the
    recorded inputs (and in a join they are not readable from the spun task).
    """
    from ._snapshot import user_artifacts

    upstream = [user_artifacts(p) for p in parents]
    own = user_artifacts(task)
    found = {}
    for name, artifact in own.items():
        same = [name in up and up[name].sha == artifact.sha for up in upstream]
        passed = bool(same) and all(same) if join else any(same)
        if not passed:
            found[name] = artifact
    return found


def run_parameters(run: Any) -> dict[str, Any]:
    """The parameter values of a run (its ``_parameters`` task)."""
    return _values_of(run["_parameters"].task)


# --- writing ----------------------------------------------------------------


def _value_source(value: Any, rel_dir: str, name: str, plan: Planned, label: str) -> str:
    if _spin._literal(value):
        text = pprint.pformat(value, width=88, sort_dicts=False)
        if len(text) <= LITERAL_LIMIT:
            plan.sizes.append((len(text), label))
            return text
    if type(value).__module__ == "numpy" and type(value).__name__ == "ndarray" and not value.dtype.hasobject:
        import io

        import numpy as np

        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        path = f"{rel_dir}/{name}.npy"
        plan.side_files.append(SideFile(path, buffer.getvalue()))
        plan.sizes.append((len(buffer.getvalue()), label))
        return f"numpy.load(HERE / {path!r})"
    try:
        data = pickle.dumps(value, protocol=4)
    except Exception as e:
        raise GenerateError(
            f"{label}: a {type(value).__name__} cannot be recorded: it is no Python literal "
            f"and cannot be pickled ({type(e).__name__}: {e})"
        ) from None
    path = f"{rel_dir}/{name}.pkl"
    plan.side_files.append(SideFile(path, data))
    plan.sizes.append((len(data), label))
    return f"pickle.loads((HERE / {path!r}).read_bytes())"


def _dict_source(values: dict[str, Any], rel_dir: str, plan: Planned, label: str, indent: str) -> str:
    lines = ["{"]
    for name, value in values.items():
        source = _value_source(value, rel_dir, name, plan, f"{label}.{name}")
        prefix = f"{indent}    {name!r}: "
        # pprint aligns continuation lines under the opening bracket at column 0
        lines.append(prefix + source.replace("\n", "\n" + " " * len(prefix)) + ",")
    lines.append(indent + "}")
    return "\n".join(lines) if values else "{}"


def inputs_module(record: StepRecord, inputs_dir: str, plan: Planned, origin: str) -> str:
    rel_dir = f"{record.step}"
    if record.join:
        entries = []
        for key, values in record.inputs.items():
            sub = f"{rel_dir}/{key.replace('[', '_').replace(']', '')}"
            entries.append(
                f"    {key!r}: {_dict_source(values, sub, plan, f'{record.step}: inputs from {key}', '    ')},"
            )
        body = "{\n" + "\n".join(entries) + "\n}" if entries else "{}"
        what = "the artifacts of each parent task, by parent step (and foreach index)"
    else:
        body = _dict_source(record.inputs, rel_dir, plan, f"{record.step}: inputs", "")
        what = "the artifacts of its parent task" if record.step != "start" else "the run's parameters"
    imports = [
        line
        for line in (
            "import pickle" if "pickle.loads(" in body else "",
            "import numpy" if "numpy.load(" in body else "",
        )
        if line
    ]
    lines = [
        f'"""Inputs of step {record.step!r}, recorded from {record.task}: {what}.',
        "",
        "Edit the values to change what the step's test feeds it.",
        '"""',
        "",
        *imports,
        "from pathlib import Path",
        "",
        "HERE = Path(__file__).parent",
        "",
        f"INPUTS = {body}",
    ]
    return "\n".join(lines) + "\n"


def _test_module(
    flow_name: str,
    flow_rel: str,
    stem: str,
    origin: str,
    params: dict[str, Any],
    configs: list[tuple[str, str]],
    records: list[StepRecord],
) -> str:
    kwargs = ", ".join(f"{k}={v!r}" for k, v in params.items())
    config = ""
    if configs:
        config = ", config=[" + ", ".join(f"({n!r}, str(HERE / {p!r}))" for n, p in configs) + "]"
    lines = [
        f'"""Step regression tests for {flow_name}, written by `pytest-metaflow generate` from run {origin}.',
        "",
        f"Each test spins one step of a fresh run with the inputs recorded from that run ({stem}_inputs/)",
        "and compares the artifacts the step sets with the recorded ones (__snapshots__/): a changed,",
        "new or removed artifact fails the step's test. After an intended change,",
        "`pytest --snapshot-update` records the new outputs.",
        '"""',
        "",
        "from pathlib import Path",
        "",
        "import pytest",
        "",
        "from pytest_metaflow.generated import load_inputs, spin_step, step_outputs",
        "",
        "HERE = Path(__file__).parent",
        f"FLOW = (HERE / {flow_rel!r}).resolve()",
        f"INPUTS = HERE / {stem + '_inputs'!r}",
        "",
        "",
        '@pytest.fixture(scope="module")',
        "def base_run(runner_factory):",
        '    """A run of the flow with the recorded parameters; each test spins one of its steps."""',
        f"    return runner_factory(FLOW{config}).run({kwargs})",
    ]
    for rec in records:
        join = ", join=True" if rec.join else ""
        lines += [
            "",
            "",
            f"def test_{rec.step}(runner, base_run, artifact_snapshot):",
            f"    inputs = load_inputs(INPUTS / {rec.step + '.py'!r})",
            f"    spun = spin_step(runner(FLOW), base_run, {rec.step!r}, inputs{join})",
            f"    artifact_snapshot.assert_match(spun, step={rec.step!r}, names=step_outputs(spun, base_run, inputs{join}))",
        ]
    return "\n".join(lines) + "\n"


# Takes _test_module's parameters (plus where to write) and passes them on: the two signatures
# are alike because one feeds the other, not by copy.
def plan_suite(
    flow_file: Path,
    out: Path,
    origin: str,
    flow_name: str,
    params: dict[str, Any],
    configs: list[tuple[str, str]],
    records: list[StepRecord],
) -> tuple[Planned, list[tuple[str, Any]]]:
    from . import _snapshot

    stem = flow_file.stem
    plan = Planned()
    inputs_dir = f"{stem}_inputs"
    for rec in records:
        plan.files[f"{inputs_dir}/{rec.step}.py"] = inputs_module(rec, inputs_dir, plan, origin)
        # inputs_module registered side files relative to the inputs dir
    # inputs_module names side files relative to the inputs directory
    plan.side_files = [SideFile(f"{inputs_dir}/{f.path}", f.data) for f in plan.side_files]
    flow_rel = os.path.relpath(flow_file.resolve(), out.resolve())
    config_rel = [(n, os.path.relpath(Path(p).resolve(), out.resolve())) for n, p in configs]
    plan.files[f"test_{stem}_steps.py"] = _test_module(flow_name, flow_rel, stem, origin, params, config_rel, records)
    snapshots = []
    for rec in records:
        try:
            doc = _snapshot.document(rec.step, [(rec.index, rec.outputs)])
        except TypeError as e:
            raise GenerateError(f"the outputs of step {rec.step!r} cannot be snapshotted: {e}") from None
        for large in doc.large.values():
            size = large.value.nbytes if large.kind == "npy" else len(pickle.dumps(large.value, protocol=4))
            plan.sizes.append((size, f"{rec.step}: outputs, side file {large.sha256[:20]}.{large.kind}"))
        plan.sizes.append((len(doc.text.encode()), f"{rec.step}: outputs"))
        snapshots.append((f"test_{rec.step}[{rec.step}]", doc))
    return plan, snapshots


def check_size(plan: Planned, max_bytes: int) -> None:
    total = sum(size for size, _ in plan.sizes)
    if total <= max_bytes:
        return
    largest = sorted(plan.sizes, reverse=True)[:5]
    raise GenerateError(
        f"the recorded data would take {_human(total)}, more than --max-bytes {_human(max_bytes)}; largest:\n"
        + "\n".join(f"  {_human(size):>9}  {label}" for size, label in largest)
        + "\nrun the flow on smaller data (--params), or raise --max-bytes"
    )


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def write_suite(out: Path, plan: Planned, snapshots: list[tuple[str, Any]], stem: str) -> Path:
    from . import _snapshot

    out.mkdir(parents=True, exist_ok=True)
    inputs_dir = out / f"{stem}_inputs"
    if inputs_dir.exists():
        shutil.rmtree(inputs_dir)  # ours: a previous generation
    for rel, text in plan.files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for side in plan.side_files:
        path = out / side.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(side.data)
    location = out / "__snapshots__" / f"test_{stem}_steps.ambr"
    location.unlink(missing_ok=True)
    _snapshot.write_snapshots(location, snapshots)
    prune_side_files(location.parent)  # those of a previous generation
    return out / f"test_{stem}_steps.py"


def generate(
    flow_file: str,
    *,
    params: dict[str, Any],
    configs: list[tuple[str, str]],
    run_pathspec: str | None,
    out: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[Path, list[StepRecord]]:
    """Record a run of ``flow_file`` (a new one, or ``run_pathspec``) and write its step tests under ``out``."""
    flow = Path(flow_file)
    if not flow.is_file():
        raise GenerateError(f"flow file {flow_file} does not exist")
    if _store.resolve_user() is None:
        os.environ.setdefault("METAFLOW_USER", _store.FALLBACK_USER)  # CI containers: root, no USER
    out_dir = Path(out)
    if run_pathspec is not None:
        from metaflow.client.core import Run, namespace

        namespace(None)
        try:
            run = Run(run_pathspec)
        except Exception as e:
            raise GenerateError(f"cannot read run {run_pathspec} with your Metaflow configuration: {e}") from None
        if not run.successful:
            raise GenerateError(f"run {run_pathspec} did not succeed; record a successful run")
        records = record(run)
        recorded_params = {k: v for k, v in run_parameters(run).items() if k not in dict(configs)}
        return _finish(
            flow, out_dir, run.pathspec, run.pathspec.split("/")[0], recorded_params, configs, records, max_bytes
        )
    store = _store.Store(Path(tempfile.mkdtemp(prefix="pytest-metaflow-generate-")))
    try:
        with _store.client_bound_to(store, current=True), _store.tempdir(store.tmp):
            from ._runner import FixtureRunner

            extra: dict[str, Any] = {"config": list(configs)} if configs else {}
            runner = FixtureRunner(str(flow.resolve()), store=store, pylint=False, **extra)
            try:
                result = runner.run(**params)
                if result.status != "successful":
                    raise GenerateError(
                        "the run of the flow failed, nothing recorded:\n" + reporting.describe_failure(result)
                    )
                records = record(result.run)
                origin = result.run.pathspec
                return _finish(flow, out_dir, origin, origin.split("/")[0], params, configs, records, max_bytes)
            finally:
                runner.kill()
                runner.cleanup()
    finally:
        store.remove()


def _finish(
    flow: Path,
    out: Path,
    origin: str,
    flow_name: str,
    params: dict[str, Any],
    configs: list[tuple[str, str]],
    records: list[StepRecord],
    max_bytes: int,
) -> tuple[Path, list[StepRecord]]:
    plan, snapshots = plan_suite(flow, out, origin, flow_name, params, configs, records)
    check_size(plan, max_bytes)
    return write_suite(out, plan, snapshots, flow.stem), records
