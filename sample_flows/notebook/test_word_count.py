"""Testing a notebook end to end: its cells run in a real Jupyter kernel inside
this test's Metaflow store, and the test reads the runs it made with the client."""

import pytest
from metaflow import Flow

pytest.importorskip("nbclient", reason="notebook tests need pytest-metaflow[notebook] (nbclient, ipykernel)")
pytest.importorskip("ipykernel", reason="notebook tests need pytest-metaflow[notebook] (nbclient, ipykernel)")


def test_word_count_notebook(run_notebook):
    nb = run_notebook("word_count.ipynb")

    run = Flow("WordCountFlow").latest_run
    assert run.successful
    assert run.data.counts == {"a": 3, "rose": 3, "is": 2}
    # The notebook's own output is there too.
    printed = "".join(o.get("text", "") for o in nb.cells[2].outputs)
    assert run.pathspec in printed
