"""A foreach step has one task per input; helpers look at all of them."""

from pytest_metaflow import assert_artifacts, assert_log_contains, assert_run_succeeded


def test_every_shard_is_processed(runner):
    result = runner("foreach_flow.py").run(shards=3)
    assert_run_succeeded(result)
    # On a step with several tasks, the actual value is the list over tasks.
    assert_artifacts(result, step="process", shard=[0, 1, 2], total=[45, 145, 245])
    assert_artifacts(result, grand_total=435)
    for shard in range(3):
        assert_log_contains(result, f"shard {shard}:", step="process")
