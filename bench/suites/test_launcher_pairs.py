"""The fixture (task launcher on: fork) vs a plain ``metaflow.Runner`` (fresh interpreters).

BENCH_FLOWS, BENCH_N as in _pairs.py; BENCH_CPU: a file where each test appends
``{"id": ..., "cpu": seconds}``, the CPU time of the processes the run started (user +
system of waited-for descendants: runtime, zygote, tasks, shims).
"""

import json
import os
import resource

import pytest
from _pairs import cases, flows, ids, run

FLOWS = flows("three_step.py")
CASES = cases(FLOWS)


def _cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run(kind, flow, request):
    # plain: what Metaflow does (fresh interpreters); the fixture with the task launcher on.
    run(kind, flow, request, plain_env={"PYTEST_METAFLOW_LAUNCHER": "exec"}, launcher="fork")


def test_warmup(request):
    _run("plain", FLOWS[0], request)
    _run("fixture", FLOWS[0], request)


@pytest.mark.parametrize("flow, i, kind", CASES, ids=ids(CASES))
def test_pair(flow, i, kind, request):
    before = _cpu()
    _run(kind, flow, request)
    path = os.environ.get("BENCH_CPU")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"id": f"{flow}-{i}-{kind}", "cpu": _cpu() - before}) + "\n")
