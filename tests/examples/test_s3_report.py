from pytest_metaflow import assert_artifacts, assert_run_succeeded


def test_report_from_s3_inputs(runner, metaflow_s3):
    metaflow_s3.put("in/part-0.csv", "1,2,3\n")  # seed input data in the test's bucket
    metaflow_s3.put("in/part-1.csv", "10,20\n")

    result = runner("sample_flows/s3_flow.py").run(inputs=metaflow_s3.url("in"))

    assert_run_succeeded(result)
    assert_artifacts(result, step="join", count=5, total=36.0)
    from metaflow import S3

    with S3(run=result.run) as s3:  # what S3(run=self) wrote in a step
        assert s3.get("report.txt").text == "count=5 total=36\n"
    assert metaflow_s3.keys("in/") == ["in/part-0.csv", "in/part-1.csv"]
