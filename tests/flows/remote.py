from metaflow import FlowSpec, batch, current, kubernetes, retry, step


class RemoteFlow(FlowSpec):
    @kubernetes(cpu=4, memory=16000, image="python:3.11")
    @retry(times=1, minutes_between_retries=0)
    @step
    def start(self):
        import os

        if current.retry_count == 0:  # @retry stays in force next to a local @kubernetes
            raise RuntimeError("flaky first attempt")
        self.attempts = current.retry_count + 1
        self.where = "local" if "KUBERNETES_SERVICE_HOST" not in os.environ else "k8s"
        self.next(self.train)

    @batch(cpu=2, queue="gpu")
    @step
    def train(self):
        self.score = 0.9
        self.next(self.end)

    @step
    def end(self):
        print("score", self.score)


if __name__ == "__main__":
    RemoteFlow()
