from metaflow import FlowSpec, step


class CustomStepsFlow(FlowSpec):
    @step(start=True)
    def begin(self):
        self.x = 1
        self.next(self.finish)

    @step(end=True)
    def finish(self):
        self.y = self.x + 1
        # artifacts named like assert_artifacts' own parameters
        self.result = 42
        self.step = "a step"
        self.rtol = 0.5
        self.expected = "e"
        print("finished with", self.y)


if __name__ == "__main__":
    CustomStepsFlow()
