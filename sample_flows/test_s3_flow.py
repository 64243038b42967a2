"""A flow that reads and writes S3, tested against the session's local S3 server."""

from pytest_metaflow import assert_artifacts, assert_log_contains, assert_run_failed, assert_run_succeeded


def test_report_from_s3_inputs(runner, metaflow_s3):
    metaflow_s3.put("in/part-0.csv", "1,2,3\n")
    metaflow_s3.put("in/part-1.csv", "10,20\n")
    metaflow_s3.put("in/README", "not a part")

    result = runner("s3_flow.py").run(inputs=metaflow_s3.url("in"))

    assert_run_succeeded(result)
    assert_artifacts(result, step="join", count=5, total=36.0)
    assert_artifacts(result, report="count=5 total=36\n")
    assert_log_contains(result, "part-1.csv: 2 values", step="parse")
    from metaflow import S3

    # The report sits under the run's prefix; the test body reads it like the flow did.
    with S3(run=result.run) as s3:
        assert s3.get("report.txt").text == "count=5 total=36\n"
    run_id = result.run.id
    assert metaflow_s3.get(f"data/S3ReportFlow/{run_id}/report.txt") == b"count=5 total=36\n"


def test_missing_inputs_fail_the_start_step(runner, metaflow_s3):
    result = runner("s3_flow.py").run(inputs=metaflow_s3.url("nothing-here"))
    # An empty prefix: no part files, and a foreach over nothing is an error in start.
    assert_run_failed(result, step="start", match="zero splits")
