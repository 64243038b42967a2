import sys

from metaflow import FlowSpec, step


class FailingFlow(FlowSpec):
    @step
    def start(self):
        print("about to fail")
        self.next(self.boom)

    @step
    def boom(self):
        print("boom stderr line", file=sys.stderr)
        raise ValueError("bad alpha 42")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    FailingFlow()
