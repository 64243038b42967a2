from metaflow import FlowSpec, Parameter, step


class BranchingFlow(FlowSpec):
    mode = Parameter("mode", default="left")

    @step
    def start(self):
        if self.mode == "left":
            self.side = "went left"
        else:
            self.side = "went right"
        self.next(self.end)

    @step
    def end(self):
        print(self.side)


if __name__ == "__main__":
    BranchingFlow()
