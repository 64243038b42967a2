"""A foreach fan-out over shards, joined by a reduction."""

from metaflow import FlowSpec, Parameter, step


class ShardFlow(FlowSpec):
    shards = Parameter("shards", default=4, type=int)

    @step
    def start(self):
        self.shard_ids = list(range(self.shards))
        self.next(self.process, foreach="shard_ids")

    @step
    def process(self):
        self.shard = self.input
        self.total = sum(range(self.shard * 10, self.shard * 10 + 10))
        print(f"shard {self.shard}: {self.total}")
        self.next(self.reduce)

    @step
    def reduce(self, inputs):
        self.grand_total = sum(i.total for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("grand total", self.grand_total)


if __name__ == "__main__":
    ShardFlow()
