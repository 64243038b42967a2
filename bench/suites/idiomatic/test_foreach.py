"""Idiomatic: one module-scoped run shared by the tests, spin for the step test."""

import pytest

from pytest_metaflow import assert_artifacts, assert_log_contains, assert_run_succeeded


@pytest.fixture(scope="module")
def sharded(runner_factory):
    return runner_factory("foreach_flow.py").run()


def test_run_succeeds(sharded):
    assert_run_succeeded(sharded)


def test_every_shard_is_processed(sharded):
    assert_artifacts(sharded, step="process", shard=[0, 1, 2, 3])


def test_shards_are_logged(sharded):
    assert_log_contains(sharded, "shard 3: 345", step="process")


def test_reduce_step(runner_factory, sharded):
    spun = runner_factory("foreach_flow.py").spin(sharded.run["reduce"].task.pathspec, persist=True)
    assert_artifacts(spun, grand_total=780)
