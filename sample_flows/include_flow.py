"""IncludeFile: a data file shipped alongside the flow becomes an artifact."""

import csv
import io

from metaflow import FlowSpec, IncludeFile, step


class WeatherFlow(FlowSpec):
    readings = IncludeFile("readings", default="data/temperatures.csv", help="CSV of city,temperature")

    @step
    def start(self):
        rows = list(csv.DictReader(io.StringIO(self.readings)))
        self.temperatures = {r["city"]: float(r["temperature"]) for r in rows}
        self.next(self.summarize)

    @step
    def summarize(self):
        self.warmest = max(self.temperatures, key=self.temperatures.get)
        self.mean = sum(self.temperatures.values()) / len(self.temperatures)
        print(f"warmest: {self.warmest}, mean {self.mean:.2f}")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    WeatherFlow()
