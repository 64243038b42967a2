"""Three steps, the middle one doing the work: the spin benchmark's flow."""

from metaflow import FlowSpec, step


class ThreeStepFlow(FlowSpec):
    @step
    def start(self):
        self.x = 21
        self.next(self.middle)

    @step
    def middle(self):
        self.y = self.x * 2
        self.next(self.end)

    @step
    def end(self):
        print("y =", self.y)


if __name__ == "__main__":
    ThreeStepFlow()
