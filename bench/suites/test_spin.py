"""``spin`` of the middle step vs a full run of the same three-step flow, interleaved."""

import os

import pytest

N = int(os.environ.get("BENCH_N", "1"))
CASES = [(i, kind) for i in range(N) for kind in (("spin", "run") if i % 2 == 0 else ("run", "spin"))]


@pytest.fixture(scope="module")
def base(runner_factory):
    result = runner_factory("three_step.py").run()
    assert result.status == "successful"
    return result


def test_warmup(base, runner_factory):
    runner_factory("three_step.py").spin(base.run["middle"].task.pathspec, persist=True)


@pytest.mark.parametrize("i, kind", CASES, ids=[f"{i}-{k}" for i, k in CASES])
def test_spin_vs_run(i, kind, base, runner_factory):
    r = runner_factory("three_step.py")
    # Both arms check the step's output the way a step test would.
    if kind == "spin":
        spun = r.spin(base.run["middle"].task.pathspec, persist=True)
        assert spun.task["y"].data == 42
    else:
        result = r.run()
        assert result.status == "successful"
        assert result.run["middle"].task["y"].data == 42
