from metaflow import FlowSpec, step


class ChattyFlow(FlowSpec):
    @step
    def start(self):
        print("first line of start")
        for i in range(30000):
            print(f"chatter {i:05d} {'x' * 40}")
        print("last line of start")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ChattyFlow()
