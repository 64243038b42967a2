from metaflow import FlowSpec, Parameter, step


class HelloFlow(FlowSpec):
    alpha = Parameter("alpha", default=1, type=int)

    @step
    def start(self):
        self.x = self.alpha + 1
        print("hello from start")
        self.next(self.end)

    @step
    def end(self):
        print("done", self.x)


if __name__ == "__main__":
    HelloFlow()
