"""``@card``: cards land in the test's store, ``get_cards()`` finds them, ``card_data`` decodes them (issue 10.3)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest


def _metaflow_files(root: Path) -> list:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if "metaflow" in p.name or p.name == "mf.cards")


def test_cards_in_store_and_card_helpers(flow_pytester: pytest.Pytester) -> None:
    flow_dir = flow_pytester.mkdir("flows")
    shutil.move(str(flow_pytester.path / "carded.py"), flow_dir / "carded.py")
    flow_pytester.makepyfile(
        """
        import os
        import pytest
        from metaflow.cards import get_cards
        from pytest_metaflow import assert_run_succeeded, card_components, card_data

        def test_cards(runner, metaflow_store):
            result = runner("flows/carded.py").run()
            assert_run_succeeded(result)
            start = result.run["start"].task
            [report] = get_cards(start, id="report")
            assert report.type == "blank"
            data = card_data(result, step="start", id="report")
            assert data["metadata"]["pathspec"] == start.pathspec
            [md] = card_components(start, kind="markdown")
            assert md["source"] == "# Scores for the week"
            [table] = card_components(result, step="start", id="report", kind="table")
            assert table["columns"] == ["n", "name"] and table["data"] == [[1, "a"], [2, "b"]]
            # the default card shows the end step's artifacts
            [artifacts] = card_components(result, step="end", type="default", kind="artifacts")
            assert {a["name"]: a["data"] for a in artifacts["data"]}["total"] == "3"
            # the cards are in the test's store
            assert list((metaflow_store.path / ".metaflow" / "mf.cards").rglob("*.html"))

        def test_missing_card_names_existing_ones(runner):
            result = runner("flows/carded.py").run()
            with pytest.raises(AssertionError, match=r"no card with id='nope' in task CardedFlow/.*/start/.*; its cards: type='blank' id='report'"):
                card_data(result, step="start", id="nope")
            with pytest.raises(TypeError, match="needs step="):
                card_data(result)
        """
    )
    result = flow_pytester.runpytest_subprocess()
    result.assert_outcomes(passed=2)
    # Nothing in the cwd (where pytest ran) nor in the flow's directory.
    assert _metaflow_files(flow_pytester.path) == []


def test_card_of_spun_task(flow_pytester: pytest.Pytester) -> None:
    """A spun task's cards go to the spin store, where get_cards() on the spun task reads."""
    flow_pytester.makepyfile(
        """
        from pytest_metaflow import card_components

        def test_spin_card(runner):
            r = runner("carded.py")
            base = r.run()
            spun = r.spin(base.run["start"].task.pathspec, persist=True)
            [md] = card_components(spun, id="report", kind="markdown")
            assert md["source"] == "# Scores for the week"
        """
    )
    result = flow_pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert _metaflow_files(flow_pytester.path) == []


def test_tutorial_flow_with_card(pytester: pytest.Pytester) -> None:
    """Metaflow's own hello-world tutorial, run with ``--with card`` as its README suggests."""
    spec = importlib.util.find_spec("metaflow")
    assert spec is not None and spec.submodule_search_locations
    tutorial = Path(list(spec.submodule_search_locations)[0]) / "tutorials" / "00-helloworld"
    shutil.copy(tutorial / "helloworld.py", pytester.path / "helloworld.py")
    pytester.makepyfile(
        """
        from metaflow.cards import get_cards
        from pytest_metaflow import assert_run_succeeded, card_components

        def test_hello_cards(runner):
            result = runner("helloworld.py", decospecs=["card"]).run()
            assert_run_succeeded(result)
            for step in ("start", "hello", "end"):
                task = result.run[step].task
                assert len(get_cards(task)) == 1
                [title, *_] = card_components(task, kind="title")
                assert title["text"] == task.pathspec
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert _metaflow_files(pytester.path) == []
