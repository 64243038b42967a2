"""A 10-wide foreach: the launcher benchmark's fan-out flow."""

from metaflow import FlowSpec, step


class ForeachTenFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(10))
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.y = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.y for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("total =", self.total)


if __name__ == "__main__":
    ForeachTenFlow()
