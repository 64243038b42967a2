"""Both branches run and the join sees both results."""

from pytest_metaflow import assert_artifacts, assert_log_contains, assert_run_succeeded


def test_branches_are_joined(runner):
    result = runner("branch_flow.py").run(text="a bb ccc")
    assert_run_succeeded(result)
    assert_artifacts(result, count=3, longest="ccc")
    assert_log_contains(result, "counted 3 words", step="count_words")
    assert_log_contains(result, "3 words, longest: ccc")
