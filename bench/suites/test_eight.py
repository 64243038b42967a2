"""Eight independent flow tests (BENCH_COUNT of them): serial vs ``-n 2``."""

import os

import pytest

FLOWS = ["train_flow.py", "branch_flow.py", "foreach_flow.py"]
COUNT = int(os.environ.get("BENCH_COUNT", "8"))


@pytest.mark.parametrize("flow", [FLOWS[i % len(FLOWS)] for i in range(COUNT)])
def test_flow(runner, flow):
    assert runner(flow).run().status == "successful"
