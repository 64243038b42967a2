"""The fixture vs a plain ``metaflow.Runner`` on the same store, interleaved A/B (see _pairs.py)."""

import pytest
from _pairs import cases, flows, ids, run

FLOWS = flows("train_flow.py")
CASES = cases(FLOWS)


def _run(kind, flow, request):
    run(kind, flow, request)


def test_warmup(request):
    # Pays for `import metaflow` and cold disk caches outside the measured tests.
    _run("plain", FLOWS[0], request)
    _run("fixture", FLOWS[0], request)


@pytest.mark.parametrize("flow, i, kind", CASES, ids=ids(CASES))
def test_pair(flow, i, kind, request):
    _run(kind, flow, request)
