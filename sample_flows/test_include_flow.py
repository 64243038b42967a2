"""IncludeFile paths are relative to the run's cwd: pass cwd= to the runner."""

from pathlib import Path

import pytest

from pytest_metaflow import assert_artifacts, assert_log_contains, assert_run_succeeded

HERE = Path(__file__).parent


def test_shipped_data_file(runner):
    result = runner("include_flow.py", cwd=str(HERE)).run()
    assert_run_succeeded(result)
    assert_artifacts(result, step="summarize", warmest="Cairo", mean=pytest.approx(16.0))
    assert_log_contains(result, "warmest: Cairo", step="summarize")


def test_other_data_file(runner, tmp_path):
    data = tmp_path / "cold.csv"
    data.write_text("city,temperature\nNuuk,-3.0\nReykjavik,1.5\n")
    result = runner("include_flow.py", cwd=str(HERE)).run(readings=str(data))
    assert_run_succeeded(result)
    assert_artifacts(result, step="summarize", warmest="Reykjavik")
