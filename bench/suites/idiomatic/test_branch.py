"""Idiomatic: one module-scoped run shared by the tests, spin for the step test."""

import pytest

from pytest_metaflow import assert_artifacts, assert_log_contains, assert_run_succeeded


@pytest.fixture(scope="module")
def branched(runner_factory):
    return runner_factory("branch_flow.py").run()


def test_run_succeeds(branched):
    assert_run_succeeded(branched)


def test_join_merges_both_branches(branched):
    assert_artifacts(branched, count=9, longest="quick")


def test_count_is_logged(branched):
    assert_log_contains(branched, "counted 9 words", step="count_words")


def test_count_words_step(runner_factory, branched):
    spun = runner_factory("branch_flow.py").spin(branched.run["count_words"].task.pathspec, persist=True)
    assert_artifacts(spun, count=9)
