"""Naive: every test makes its own full run."""

from pytest_metaflow import assert_artifacts, assert_log_contains, assert_run_succeeded


def test_run_succeeds(runner):
    assert_run_succeeded(runner("foreach_flow.py").run())


def test_every_shard_is_processed(runner):
    assert_artifacts(runner("foreach_flow.py").run(), step="process", shard=[0, 1, 2, 3])


def test_shards_are_logged(runner):
    assert_log_contains(runner("foreach_flow.py").run(), "shard 3: 345", step="process")


def test_reduce_step(runner):
    assert_artifacts(runner("foreach_flow.py").run(), step="reduce", grand_total=780)
