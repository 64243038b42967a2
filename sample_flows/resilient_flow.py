"""@retry survives a flaky step, @catch turns a failing step into data."""

from metaflow import FlowSpec, catch, current, retry, step


class ResilientFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.flaky)

    @retry(times=2, minutes_between_retries=0)
    @step
    def flaky(self):
        # Fails on the first attempt, succeeds on the retry.
        self.attempts = current.retry_count + 1
        if current.retry_count == 0:
            raise ConnectionError("transient outage")
        self.next(self.optional)

    @catch(var="failure", print_exception=False)
    @step
    def optional(self):
        self.enriched = False
        raise RuntimeError("enrichment service is down")
        self.next(self.end)

    @step
    def end(self):
        print("finished; optional step failed:", self.failure is not None)


if __name__ == "__main__":
    ResilientFlow()
