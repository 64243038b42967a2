"""The fixture (task launcher on: fork) vs a plain ``metaflow.Runner`` (fresh interpreters).

BENCH_FLOWS, BENCH_N as in _pairs.py; BENCH_CPU: a file where each test appends
``{"id": ..., "cpu": seconds}``, the CPU time of the processes the run started (user +
system of waited-for descendants: runtime, zygote, tasks, shims). Runtimes forked by the
plugin's runtime server are children of the server, not of pytest: the server's own CPU
and its waited-for children's (from /proc/<server>/stat) are added.
"""

import json
import os
import resource

import pytest
from _pairs import cases, flows, ids, run

FLOWS = flows("three_step.py")
CASES = cases(FLOWS)


def _server_cpu():
    from pytest_metaflow import _runtime_server

    server = getattr(_runtime_server, "_server", None)  # absent before the runtime server existed
    proc = server.proc if server is not None else None
    if proc is None:
        return 0.0
    try:
        with open(f"/proc/{proc.pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    # utime, stime, cutime, cstime: fields 14-17 of stat
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + _server_cpu()


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
