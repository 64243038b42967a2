import os

from metaflow import FlowSpec, step


class ResumableFlow(FlowSpec):
    """Step `flaky` fails until the file named by $RESUME_MARKER exists."""

    @step
    def start(self):
        self.x = 1
        self.next(self.flaky)

    @step
    def flaky(self):
        if not os.path.exists(os.environ["RESUME_MARKER"]):
            raise RuntimeError("marker missing")
        self.y = self.x + 1
        self.next(self.end)

    @step
    def end(self):
        print("y is", self.y)


if __name__ == "__main__":
    ResumableFlow()
