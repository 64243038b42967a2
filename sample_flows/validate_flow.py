"""A flow that rejects bad input by failing a step."""

from metaflow import FlowSpec, Parameter, step

# Cases for `--metaflow-collect` / ini `metaflow_collect`: each becomes a test item
# (validate_flow.py::ValidateFlow[ok], ...[too_high]) without a test file.
PYTEST_METAFLOW = {
    "cases": {
        "ok": {"params": {"threshold": 0.2}},
        "too_high": {
            "params": {"threshold": 2.0},
            "expect": "failure",
            "step": "check",
            "exception": "ValueError",
        },
    }
}


class ValidateFlow(FlowSpec):
    threshold = Parameter("threshold", default=0.5, type=float)

    @step
    def start(self):
        self.next(self.check)

    @step
    def check(self):
        if not 0 <= self.threshold <= 1:
            raise ValueError(f"threshold must be within [0, 1], got {self.threshold}")
        self.accepted = True
        self.next(self.end)

    @step
    def end(self):
        print("threshold accepted")


if __name__ == "__main__":
    ValidateFlow()
