CELL = """
from metaflow import FlowSpec, step
class CellFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)
    @step
    def end(self):
        pass
"""


def test_cell(nbrunner):
    assert nbrunner(CELL).nbrun().successful
