"""Reading ``@card`` content in tests: the data a card's HTML embeds, decoded.

A Metaflow card is one HTML file; the cards Metaflow renders itself (``default``,
``blank`` and the components API) embed what they show as base64 JSON
(``window.__MF_DATA__["<id>"] = "<base64>"``): ``{"metadata": ..., "components":
[...]}``, components nested in ``page``/``section`` containers. Importing this
module does not import metaflow.
"""

from __future__ import annotations

import base64
import binascii
import json
import operator
import re
from collections.abc import Iterator
from typing import Any

from . import reporting as r
from ._types import RunOrTask

__all__ = ["card_data", "card_components"]

_hide = operator.methodcaller("errisinstance", AssertionError)
_DATA = re.compile(r'window\.__MF_DATA__\[\s*["\']([^"\']+)["\']\s*\]\s*=\s*["\']([A-Za-z0-9+/=\s]+)["\']')
_CONTAINERS = ("page", "section")


def _task(result: Any, step: str | None, helper: str) -> Any:
    _, obj = r.split(result)
    what = r.kind(obj)
    if what == "task":
        if step is not None and obj.pathspec.split("/")[2] != step:
            raise TypeError(f"{helper}(): step={step!r} given with task {obj.pathspec}; pass the run instead")
        return obj
    if what != "run":
        raise TypeError(
            f"{helper}() takes an ExecutingRun, metaflow.Run, ExecutingTask or metaflow.Task, "
            f"got {type(result).__name__}: {result!r}"
        )
    if step is None:
        raise TypeError(f"{helper}(run) needs step=: the step whose card to read")
    tasks = r.tasks(obj, step)
    if len(tasks) != 1:
        raise TypeError(
            f"{helper}(): step {step!r} of {obj.pathspec} has {len(tasks)} tasks; pass one of them "
            f"(e.g. run[{step!r}].tasks())"
        )
    return tasks[0]


def _card(task: Any, type: str | None, id: str | None, helper: str) -> Any:
    __tracebackhide__ = _hide
    from metaflow.cards import get_cards
    from metaflow.exception import MetaflowException

    def describe(cards: Any) -> str:
        names = [f"type={c.type!r} id={c.id!r}" for c in cards]
        return ", ".join(names) if names else "none"

    # A spun task lives in spin's metadata, which the client's parent lookups (made to
    # follow a resumed task to its origin) do not use: read its own cards.
    spun = getattr(getattr(getattr(task, "_metaflow", None), "metadata", None), "TYPE", "") == "spin"
    try:
        everything = list(get_cards(task, follow_resumed=not spun))
    except MetaflowException:  # CardNotPresentException and friends: no card at all
        everything = []
    chosen = [c for c in everything if (type is None or c.type == type) and (id is None or c.id == id)]
    wanted = ", ".join(f"{k}={v!r}" for k, v in (("type", type), ("id", id)) if v is not None) or "any"
    if not chosen:
        raise AssertionError(
            f"{helper}(): no card with {wanted} in task {task.pathspec}; its cards: {describe(everything)}"
        )
    if len(chosen) > 1:
        raise AssertionError(
            f"{helper}(): {len(chosen)} cards with {wanted} in task {task.pathspec} ({describe(chosen)}); "
            "pass type= and/or id= to pick one"
        )
    return chosen[0]


def card_data(
    result: RunOrTask, *, step: str | None = None, type: str | None = None, id: str | None = None
) -> dict[str, Any]:
    """The data a task's card shows, decoded from its HTML.

    Parameters
    ----------
    result : ExecutingRun, metaflow.Run, ExecutingTask or metaflow.Task
        The task whose card to read, or a run together with ``step``.
    step : str, optional
        The step (with a single task) whose card to read, when ``result`` is a run.
    type : str, optional
        The card's type (``"default"``, ``"blank"``, ...), when the task has several cards.
    id : str, optional
        The card's ``id`` (``@card(id=...)``), when the task has several cards.

    Returns
    -------
    Dict[str, Any]
        ``{"metadata": {...}, "components": [...]}`` as the card embeds it;
        components are dicts with a ``"type"`` (``"markdown"``, ``"table"``,
        ``"image"``, ``"artifacts"``...) nested in ``page``/``section`` containers
        (:func:`card_components` flattens them).

    Raises
    ------
    AssertionError
        No card (or several) match, naming the cards the task has; or the card
        embeds no data (a custom card type with its own HTML: read
        ``get_cards(task)[0].get()``).
    """
    __tracebackhide__ = _hide
    task = _task(result, step, "card_data")
    card = _card(task, type, id, "card_data")
    html = card.get()
    found = _DATA.findall(html or "")
    if not found:
        raise AssertionError(
            f"card_data(): the {card.type!r} card of task {task.pathspec} embeds no data "
            "(not one of Metaflow's component cards); read its HTML with metaflow.cards.get_cards(task)[0].get()"
        )
    try:
        data: dict[str, Any] = json.loads(base64.b64decode(found[-1][1]))
    except (binascii.Error, ValueError) as e:
        raise AssertionError(
            f"card_data(): the data of the {card.type!r} card of task {task.pathspec} does not decode: {e}"
        ) from None
    return data


def _leaves(components: list[Any]) -> Iterator[dict[str, Any]]:
    for component in components:
        if not isinstance(component, dict):
            continue
        if component.get("type") in _CONTAINERS:
            yield from _leaves(component.get("contents") or [])
        else:
            yield component


def card_components(
    result: RunOrTask,
    *,
    step: str | None = None,
    type: str | None = None,
    id: str | None = None,
    kind: str | None = None,
) -> list[dict[str, Any]]:
    """The components a card shows, in order, out of their page/section containers.

    Same arguments as :func:`card_data`, plus ``kind`` to keep only components of
    that type (``"markdown"``, ``"table"``, ``"image"``, ``"artifacts"``...)::

        [md] = card_components(result, step="start", id="report", kind="markdown")
        assert md["source"] == "# Scores for the week"
    """
    __tracebackhide__ = _hide
    leaves = list(_leaves(card_data(result, step=step, type=type, id=id).get("components") or []))
    return [c for c in leaves if kind is None or c.get("type") == kind]
