from metaflow.cards import get_cards
from pytest_metaflow import card_components, card_data


def test_report_card(runner):
    result = runner("flows/carded.py").run()
    [card] = get_cards(result.run["start"].task, id="report")
    assert card.type == "blank"
    [md] = card_components(result, step="start", id="report", kind="markdown")
    assert md["source"] == "# Scores for the week"
    [table] = card_components(result, step="start", kind="table")
    assert table["data"] == [[1, "a"], [2, "b"]]
    data = card_data(result, step="start", id="report")
    assert data["metadata"]["pathspec"] == result.run["start"].task.pathspec
