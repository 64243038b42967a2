import time

from metaflow import FlowSpec, Parameter, step


class SlowFlow(FlowSpec):
    seconds = Parameter("seconds", default=60, type=int)

    @step
    def start(self):
        print("sleeping", flush=True)
        time.sleep(self.seconds)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SlowFlow()
