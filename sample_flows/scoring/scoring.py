"""Flag large transactions. test_scoring.py unit-tests its `score` step with spin."""

from metaflow import FlowSpec, Parameter, step


class ScoringFlow(FlowSpec):
    threshold = Parameter("threshold", default=100.0, type=float, help="flag amounts above this")

    @step
    def start(self):
        self.amounts = [12.5, 250.0, 40.0, 130.0]
        self.next(self.score)

    @step
    def score(self):
        if self.amounts:
            self.flagged = [a for a in self.amounts if a > self.threshold]
            self.mean = sum(self.amounts) / len(self.amounts)
        else:
            print("nothing to score")
            self.flagged = []
            self.mean = 0.0
        print(f"flagged {len(self.flagged)} of {len(self.amounts)}")
        self.next(self.end)

    @step
    def end(self):
        print(f"mean amount {self.mean:.2f}")


if __name__ == "__main__":
    ScoringFlow()
