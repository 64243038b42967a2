from metaflow import FlowSpec, Parameter, step


class ScoringFlow(FlowSpec):
    alpha = Parameter("alpha", default=1, type=int)

    @step
    def start(self):
        self.values = [self.alpha, 2 * self.alpha]
        self.next(self.score)

    @step
    def score(self):
        self.total = float(sum(self.values))
        print("total is", self.total)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ScoringFlow()
