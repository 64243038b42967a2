"""numpy and pandas artifacts: a feature table and its normalised matrix."""

import numpy as np
import pandas as pd
from metaflow import FlowSpec, step


class FeaturesFlow(FlowSpec):
    @step
    def start(self):
        self.table = pd.DataFrame({"city": ["Oslo", "Lima", "Pune"], "temp": [4.5, 19.0, 27.5]})
        self.next(self.end)

    @step
    def end(self):
        temps = self.table["temp"].to_numpy()
        self.scaled = (temps - temps.mean()) / temps.std()
        self.weights = {"temp": np.array([0.5, 0.25, 0.25])}


if __name__ == "__main__":
    FeaturesFlow()
