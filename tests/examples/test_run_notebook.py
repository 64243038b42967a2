from metaflow import Flow


def test_word_count_notebook(run_notebook):
    nb = run_notebook("sample_flows/notebook/word_count.ipynb")  # the executed nbformat notebook
    run = Flow("WordCountFlow").latest_run  # the run its NBRunner(...).nbrun() made
    assert run.data.counts["rose"] == 3
    assert run.pathspec in str(nb.cells[2].outputs)  # what the notebook printed
