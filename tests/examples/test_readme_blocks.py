"""The README's Python code blocks are the files in this directory, which the suite runs.

Each ```python block in README.md is preceded (last non-blank line before the fence)
by a marker saying what it is:

- ``<!-- example: tests/examples/test_x.py -->``: the block is that whole file;
- ``<!-- example: sample_flows/test_x.py (excerpt) -->``: a run of lines of a sample flow's
  test or flow file (the main job runs those);
- ``<!-- example: tests/examples/test_x.py (excerpt) -->``: the block is a run of
  consecutive lines of that file (for snippets that leave out imports or setup);
- ``<!-- example: none (REASON) -->``: intentionally not a runnable example (say why).

A block without a marker is reported as skipped, with its line, until it is converted.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
HERE = Path(__file__).resolve().parent

FENCE = re.compile(r"^(?P<indent>\s*)```python\s*$")
MARKER = re.compile(r"^\s*<!--\s*example:\s*(?P<target>\S+)(?:\s+\((?P<note>[^)]*)\))?\s*-->\s*$")


class Block(NamedTuple):
    line: int  # 1-based line of the opening fence
    code: str
    marker: re.Match[str] | None


def readme_blocks(text: str) -> list[Block]:
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        indent = fence.group("indent")
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        code = textwrap.dedent("\n".join(lines[i + 1 : end])) + "\n"
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.match(before)
        assert marker is None or before.startswith(indent), f"README.md:{i + 1}: marker not indented like its block"
        blocks.append(Block(i + 1, code, marker))
        i = end + 1
    return blocks


BLOCKS = readme_blocks(README.read_text())


def test_the_readme_has_python_blocks() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("block", BLOCKS, ids=[f"README.md:{b.line}" for b in BLOCKS])
def test_readme_block_is_an_example(block: Block) -> None:
    if block.marker is None:
        first = block.code.strip().splitlines()[0]
        pytest.skip(f"README.md:{block.line} ({first[:40]!r}): python block without an example marker yet")
    target, note = block.marker.group("target"), block.marker.group("note")
    if target == "none":
        assert note and note.strip(), f"README.md:{block.line}: `example: none` needs a reason in parentheses"
        return
    path = ROOT / target
    assert (path.parent == HERE and path.name.startswith("test_")) or target.startswith("sample_flows/"), (
        f"README.md:{block.line}: examples live in tests/examples/test_*.py or sample_flows/, not {target}"
    )
    assert path.is_file(), f"README.md:{block.line}: {target} does not exist"
    source = path.read_text()
    if note is None:
        assert block.code == source, f"README.md:{block.line} differs from {target}: copy one onto the other"
    else:
        assert note == "excerpt", f"README.md:{block.line}: unknown marker note {note!r} (only 'excerpt')"
        assert f"\n{block.code}" in f"\n{source}", f"README.md:{block.line} is not a run of lines of {target}"


def test_every_example_file_is_shown_in_the_readme() -> None:
    shown = {ROOT / b.marker.group("target") for b in BLOCKS if b.marker and b.marker.group("target") != "none"}
    examples = {p for p in HERE.glob("test_*.py") if p.resolve() != Path(__file__).resolve()}
    assert examples - shown == set(), f"example files no README block shows: {sorted(examples - shown)}"
