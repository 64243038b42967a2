"""Naive: every test makes its own full run."""

from pytest_metaflow import assert_artifacts, assert_log_contains, assert_run_succeeded


def test_run_succeeds(runner):
    assert_run_succeeded(runner("branch_flow.py").run())


def test_join_merges_both_branches(runner):
    assert_artifacts(runner("branch_flow.py").run(), count=9, longest="quick")


def test_count_is_logged(runner):
    assert_log_contains(runner("branch_flow.py").run(), "counted 9 words", step="count_words")


def test_count_words_step(runner):
    assert_artifacts(runner("branch_flow.py").run(), step="count_words", count=9)
