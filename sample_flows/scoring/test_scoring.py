"""Run the flow once, then unit-test one step with spin and different inputs."""

import pytest

from pytest_metaflow import assert_artifacts, assert_log_contains, assert_run_succeeded


@pytest.fixture(scope="module")
def scoring(runner_factory):
    # One full run for the whole module; spin re-runs single steps of it.
    runner = runner_factory("scoring.py")
    return runner, runner.run(threshold=100.0)


@pytest.mark.parametrize(
    "amounts, flagged, mean",
    [
        ([99.0, 101.0], [101.0], 100.0),
        ([1.0, 2.0, 3.0], [], 2.0),
        ([], [], 0.0),
    ],
)
def test_score_step(scoring, amounts, flagged, mean):
    runner, result = scoring
    # Re-run only `score`, with `amounts` replaced; everything else comes from the run.
    # persist=True keeps the spun task's artifacts readable (Metaflow's default is False).
    spun = runner.spin(result.run["score"].task.pathspec, artifacts={"amounts": amounts}, persist=True)
    assert_artifacts(spun, flagged=flagged, mean=pytest.approx(mean))
    assert_log_contains(spun, f"flagged {len(flagged)} of {len(amounts)}")


def test_score_step_with_another_threshold(scoring):
    runner, result = scoring
    # Parameters are artifacts too: override one without a new full run.
    spun = runner.spin(result.run["score"].task.pathspec, artifacts={"threshold": 10.0}, persist=True)
    assert_artifacts(spun, flagged=[12.5, 250.0, 40.0, 130.0])


def test_full_run(scoring):
    _, result = scoring
    assert_run_succeeded(result)
    assert_artifacts(result, step="score", flagged=[250.0, 130.0], mean=pytest.approx(108.125))
