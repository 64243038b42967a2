"""Testing a notebook end to end: its cells run in a real Jupyter kernel inside
this test's Metaflow store, and the test reads the runs it made with the client."""

from metaflow import Flow

# Without pytest-metaflow[notebook] installed, run_notebook skips the test and says why.


def test_word_count_notebook(run_notebook):
    nb = run_notebook("word_count.ipynb")

    run = Flow("WordCountFlow").latest_run
    assert run.successful
    assert run.data.counts == {"a": 3, "rose": 3, "is": 2}
    # The notebook's own output is there too.
    printed = "".join(o.get("text", "") for o in nb.cells[2].outputs)
    assert run.pathspec in printed
