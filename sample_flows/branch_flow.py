"""A static branch: two steps run in parallel, a join merges their results."""

from metaflow import FlowSpec, Parameter, step


class BranchFlow(FlowSpec):
    text = Parameter("text", default="the quick brown fox jumps over the lazy dog")

    @step
    def start(self):
        self.words = self.text.split()
        self.next(self.count_words, self.longest_word)

    @step
    def count_words(self):
        self.count = len(self.words)
        print("counted", self.count, "words")
        self.next(self.join)

    @step
    def longest_word(self):
        self.longest = max(self.words, key=len)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.count = inputs.count_words.count
        self.longest = inputs.longest_word.longest
        self.next(self.end)

    @step
    def end(self):
        print(f"{self.count} words, longest: {self.longest}")


if __name__ == "__main__":
    BranchFlow()
