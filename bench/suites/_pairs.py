"""The interleaved A/B pairs of test_pairs.py and test_launcher_pairs.py (one place for both).

BENCH_FLOWS (comma-separated flow files) and BENCH_N (pairs per flow) come from
bench/run.py. Each pair runs in the order A B, the next one B A, so drift in the
machine's load falls on both sides evenly. bench/run.py copies this directory, so the
suites import this module by its name.
"""

import os


def flows(default):
    return os.environ.get("BENCH_FLOWS", default).split(",")


def cases(flow_names):
    """``(flow, i, kind)`` for BENCH_N pairs per flow, ``plain``/``fixture`` order alternating."""
    n = int(os.environ.get("BENCH_N", "1"))
    return [
        (flow, i, kind)
        for i in range(n)
        for flow in flow_names
        for kind in (("plain", "fixture") if i % 2 == 0 else ("fixture", "plain"))
    ]


def ids(cases):
    return [f"{f}-{i}-{k}" for f, i, k in cases]


def run(kind, flow, request, plain_env=None, **runner_options):
    """One side of a pair: a plain ``metaflow.Runner`` on the test's store, or the ``runner`` fixture."""
    if kind == "plain":
        import metaflow

        store = request.getfixturevalue("metaflow_store")
        with metaflow.Runner(flow, show_output=False, pylint=False, env={**store.env(), **(plain_env or {})}) as r:
            result = r.run()
            assert result.status == "successful", result.stderr
    else:
        result = request.getfixturevalue("runner")(flow, **runner_options).run()
        assert result.status == "successful", result.stderr
