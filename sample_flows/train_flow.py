"""Parameters and a linear chain: the flow most projects start with."""

from metaflow import FlowSpec, Parameter, step


class TrainFlow(FlowSpec):
    epochs = Parameter("epochs", default=50, type=int, help="passes over the data")
    lr = Parameter("lr", default=0.5, type=float, help="learning rate")

    @step
    def start(self):
        self.data = [(x, 2.0 * x + 1.0) for x in range(10)]
        self.next(self.train)

    @step
    def train(self):
        # Fit y = w*x + b by plain gradient descent on a tiny data set.
        w, b = 0.0, 0.0
        n = len(self.data)
        for epoch in range(self.epochs):
            gw = sum(2 * (w * x + b - y) * x for x, y in self.data) / n
            gb = sum(2 * (w * x + b - y) for x, y in self.data) / n
            w -= self.lr * gw / 30
            b -= self.lr * gb
            print(f"epoch {epoch + 1} done")
        self.w, self.b = w, b
        self.next(self.evaluate)

    @step
    def evaluate(self):
        self.loss = sum((self.w * x + self.b - y) ** 2 for x, y in self.data) / len(self.data)
        print(f"loss {self.loss:.4f}")
        self.next(self.end)

    @step
    def end(self):
        print("trained", round(self.w, 3), round(self.b, 3))


if __name__ == "__main__":
    TrainFlow()
