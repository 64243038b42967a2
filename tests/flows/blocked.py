import time

from metaflow import FlowSpec, step


class BlockedFlow(FlowSpec):
    @step
    def start(self):
        print("waiting for an endpoint that never answers")
        time.sleep(100000)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BlockedFlow()
