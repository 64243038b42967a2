"""Step regression tests for TrainFlow, written by `pytest-metaflow generate` from run TrainFlow/1795975359143637.

Each test spins one step of a fresh run with the inputs recorded from that run (train_flow_inputs/)
and compares the artifacts the step sets with the recorded ones (__snapshots__/): a changed,
new or removed artifact fails the step's test. After an intended change,
`pytest --snapshot-update` records the new outputs.
"""

from pathlib import Path

import pytest

from pytest_metaflow.generated import load_inputs, spin_step, step_outputs

HERE = Path(__file__).parent
FLOW = (HERE / "../train_flow.py").resolve()
INPUTS = HERE / "train_flow_inputs"


@pytest.fixture(scope="module")
def base_run(runner_factory):
    """A run of the flow with the recorded parameters; each test spins one of its steps."""
    return runner_factory(FLOW).run(epochs=2)


def test_start(runner, base_run, artifact_snapshot):
    inputs = load_inputs(INPUTS / "start.py")
    spun = spin_step(runner(FLOW), base_run, "start", inputs)
    artifact_snapshot.assert_match(spun, step="start", names=step_outputs(spun, base_run, inputs))


def test_train(runner, base_run, artifact_snapshot):
    inputs = load_inputs(INPUTS / "train.py")
    spun = spin_step(runner(FLOW), base_run, "train", inputs)
    artifact_snapshot.assert_match(spun, step="train", names=step_outputs(spun, base_run, inputs))


def test_evaluate(runner, base_run, artifact_snapshot):
    inputs = load_inputs(INPUTS / "evaluate.py")
    spun = spin_step(runner(FLOW), base_run, "evaluate", inputs)
    artifact_snapshot.assert_match(spun, step="evaluate", names=step_outputs(spun, base_run, inputs))


def test_end(runner, base_run, artifact_snapshot):
    inputs = load_inputs(INPUTS / "end.py")
    spun = spin_step(runner(FLOW), base_run, "end", inputs)
    artifact_snapshot.assert_match(spun, step="end", names=step_outputs(spun, base_run, inputs))
