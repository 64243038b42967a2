from metaflow import FlowSpec, step


class StdinReaderFlow(FlowSpec):
    @step
    def start(self):
        print("asking for a name")
        self.name = input("name? ")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    StdinReaderFlow()
