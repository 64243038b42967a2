from metaflow import FlowSpec, Parameter, step


def scale(x):  # module-level helpers are visible to the steps
    return 10 * x


class InlineFlow(FlowSpec):  # defined in the test module (or a conftest, or any module)
    alpha = Parameter("alpha", default=1, type=int)

    @step
    def start(self):
        self.x = scale(self.alpha)
        self.next(self.end)

    @step
    def end(self):
        pass


def test_inline(nbrunner):
    run = nbrunner(InlineFlow).nbrun(alpha=2)  # metaflow.Run, finished
    assert run.data.x == 20
