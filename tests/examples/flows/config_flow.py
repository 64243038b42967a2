from metaflow import Config, FlowSpec, step


class ConfigFlow(FlowSpec):
    train = Config("train", default="train.json")

    @step
    def start(self):
        self.lr = self.train.lr
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ConfigFlow()
