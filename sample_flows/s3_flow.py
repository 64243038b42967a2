"""Reads numbers from S3, writes a report next to the run's data with S3(run=self),
and reads it back with plain boto3: a flow as it would run in production."""

from metaflow import S3, FlowSpec, Parameter, step

# Needs an S3 endpoint: tested through the metaflow_s3 fixture in test_s3_flow.py.
PYTEST_METAFLOW = {"skip": "needs S3: see test_s3_flow.py (metaflow_s3 fixture)"}


class S3ReportFlow(FlowSpec):
    inputs = Parameter("inputs", help="s3:// prefix holding part-*.csv files of numbers", required=True)

    @step
    def start(self):
        with S3(s3root=self.inputs) as s3:
            parts = sorted(s3.list_paths(), key=lambda obj: obj.url)
            self.files = [obj.key for obj in parts if obj.key.startswith("part-")]
        self.next(self.parse, foreach="files")

    @step
    def parse(self):
        with S3(s3root=self.inputs) as s3:
            text = s3.get(self.input).text
        self.values = [float(v) for v in text.replace("\n", ",").split(",") if v.strip()]
        print(f"{self.input}: {len(self.values)} values")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(sum(i.values) for i in inputs)
        self.count = sum(len(i.values) for i in inputs)
        with S3(run=self) as s3:
            self.report_url = s3.put("report.txt", f"count={self.count} total={self.total:g}\n")
        self.next(self.end)

    @step
    def end(self):
        import boto3  # endpoint and credentials come from the environment

        bucket, key = self.report_url[len("s3://") :].split("/", 1)
        body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        self.report = body.decode()
        print("report:", self.report.strip())


if __name__ == "__main__":
    S3ReportFlow()
