"""The fixture vs a plain ``metaflow.Runner`` on the same store, interleaved A/B.

BENCH_FLOWS (comma-separated flow files) and BENCH_N (pairs per flow) come from
bench/run.py. Each pair runs in the order A B, the next one B A, so drift in the
machine's load falls on both sides evenly.
"""

import os

import pytest

FLOWS = os.environ.get("BENCH_FLOWS", "train_flow.py").split(",")
N = int(os.environ.get("BENCH_N", "1"))
CASES = [
    (flow, i, kind)
    for i in range(N)
    for flow in FLOWS
    for kind in (("plain", "fixture") if i % 2 == 0 else ("fixture", "plain"))
]


def _run(kind, flow, request):
    if kind == "plain":
        import metaflow

        store = request.getfixturevalue("metaflow_store")
        with metaflow.Runner(flow, show_output=False, pylint=False, env=store.env()) as r:
            result = r.run()
            assert result.status == "successful", result.stderr
    else:
        result = request.getfixturevalue("runner")(flow).run()
        assert result.status == "successful", result.stderr


def test_warmup(request):
    # Pays for `import metaflow` and cold disk caches outside the measured tests.
    _run("plain", FLOWS[0], request)
    _run("fixture", FLOWS[0], request)


@pytest.mark.parametrize("flow, i, kind", CASES, ids=[f"{f}-{i}-{k}" for f, i, k in CASES])
def test_pair(flow, i, kind, request):
    _run(kind, flow, request)
