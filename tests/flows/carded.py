from metaflow import FlowSpec, card, current, step
from metaflow.cards import Markdown, Table


class CardedFlow(FlowSpec):
    @card(type="blank", id="report")
    @step
    def start(self):
        self.rows = [[1, "a"], [2, "b"]]
        current.card["report"].append(Markdown("# Scores for the week"))
        current.card["report"].append(Table(self.rows, headers=["n", "name"]))
        self.next(self.end)

    @card
    @step
    def end(self):
        self.total = sum(r[0] for r in self.rows)


if __name__ == "__main__":
    CardedFlow()
