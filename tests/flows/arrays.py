import numpy as np
import pandas as pd
from metaflow import FlowSpec, step


class ArraysFlow(FlowSpec):
    @step
    def start(self):
        self.matrix = np.arange(6, dtype="float64").reshape(2, 3) / 10
        self.labels = np.array([1, 2, 3], dtype="int64")
        self.frame = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5]}, index=["x", "y", "z"])
        self.series = pd.Series([10, 20, 30], name="score")
        self.nested = {"w": np.ones(3), "n": 2}
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ArraysFlow()
