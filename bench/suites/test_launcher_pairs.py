"""The fixture (task launcher on: fork) vs a plain ``metaflow.Runner`` (fresh interpreters).

BENCH_FLOWS, BENCH_N as in test_pairs.py; BENCH_CPU: a file where each test appends
``{"id": ..., "cpu": seconds}``, the CPU time of the processes the run started (user +
system of waited-for descendants: runtime, zygote, tasks, shims).
"""

import json
import os
import resource

import pytest

FLOWS = os.environ.get("BENCH_FLOWS", "three_step.py").split(",")
N = int(os.environ.get("BENCH_N", "1"))
CASES = [
    (flow, i, kind)
    for i in range(N)
    for flow in FLOWS
    for kind in (("plain", "fixture") if i % 2 == 0 else ("fixture", "plain"))
]


def _cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run(kind, flow, request):
    if kind == "plain":
        import metaflow

        store = request.getfixturevalue("metaflow_store")
        env = {**store.env(), "PYTEST_METAFLOW_LAUNCHER": "exec"}  # what Metaflow does
        with metaflow.Runner(flow, show_output=False, pylint=False, env=env) as r:
            result = r.run()
            assert result.status == "successful", result.stderr
    else:
        result = request.getfixturevalue("runner")(flow, launcher="fork").run()
        assert result.status == "successful", result.stderr


def test_warmup(request):
    _run("plain", FLOWS[0], request)
    _run("fixture", FLOWS[0], request)


@pytest.mark.parametrize("flow, i, kind", CASES, ids=[f"{f}-{i}-{k}" for f, i, k in CASES])
def test_pair(flow, i, kind, request):
    before = _cpu()
    _run(kind, flow, request)
    path = os.environ.get("BENCH_CPU")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"id": f"{flow}-{i}-{kind}", "cpu": _cpu() - before}) + "\n")
