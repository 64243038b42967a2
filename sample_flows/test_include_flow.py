"""IncludeFile paths are relative to the run's cwd: run from the flow's directory with cwd=FLOW_DIR."""

import pytest

from pytest_metaflow import FLOW_DIR, assert_artifacts, assert_log_contains, assert_run_succeeded


def test_shipped_data_file(runner):
    result = runner("include_flow.py", cwd=FLOW_DIR).run()
    assert_run_succeeded(result)
    assert_artifacts(result, step="summarize", warmest="Cairo", mean=pytest.approx(16.0))
    assert_log_contains(result, "warmest: Cairo", step="summarize")


def test_other_data_file(runner, tmp_path):
    data = tmp_path / "cold.csv"
    data.write_text("city,temperature\nNuuk,-3.0\nReykjavik,1.5\n")
    result = runner("include_flow.py", cwd=FLOW_DIR).run(readings=str(data))
    assert_run_succeeded(result)
    assert_artifacts(result, step="summarize", warmest="Reykjavik")
