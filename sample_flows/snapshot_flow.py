"""Artifacts worth snapshotting: numpy arrays, a pandas frame, a large array, a foreach."""

import numpy as np
import pandas as pd
from metaflow import FlowSpec, Parameter, step


class SnapshotFlow(FlowSpec):
    scale = Parameter("scale", default=1.0, type=float)

    @step
    def start(self):
        self.weights = np.arange(3.0) * self.scale
        self.frame = pd.DataFrame({"x": [1, 2, 3], "y": [1.0 * self.scale, 2.0 * self.scale, 3.0 * self.scale]})
        self.big = np.arange(2000.0) * self.scale  # above the inline limit: a side file
        self.items = [1, 2]
        self.next(self.square, foreach="items")

    @step
    def square(self):
        self.value = self.input**2 * self.scale
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.total = sum(i.value for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)


if __name__ == "__main__":
    SnapshotFlow()
