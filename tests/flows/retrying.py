import sys

from metaflow import FlowSpec, Parameter, catch, current, retry, step


class RetryingFlow(FlowSpec):
    always = Parameter("always", default=False, type=bool, help="fail every attempt of start")

    @retry(times=1, minutes_between_retries=0)
    @step
    def start(self):
        print(f"attempt {current.retry_count} of start")
        if current.retry_count == 0 or self.always:
            print("first try failing", file=sys.stderr)
            raise ValueError(f"flaky {current.retry_count}")
        self.next(self.fragile)

    @catch(var="problem", print_exception=False)
    @step
    def fragile(self):
        print("fragile says hi")
        raise KeyError("always broken")
        self.next(self.end)

    @step
    def end(self):
        print("problem was", type(self.problem).__name__)


if __name__ == "__main__":
    RetryingFlow()
