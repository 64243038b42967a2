"""Bad input fails at the call site with the reason first, never a hang."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pytest_metaflow import FlowFileNotFoundError, FlowStartError, InvalidFlowError

from .conftest import FLOWS

HELLO = (FLOWS / "hello.py").read_text()


def write(tmp_path: Path, source: str, name: str = "flow.py") -> Path:
    path = tmp_path / name
    path.write_text(source)
    return path


def test_missing_flow_file_lists_every_path_tried(runner: Any, request: pytest.FixtureRequest) -> None:
    with pytest.raises(FlowFileNotFoundError) as info:
        runner("no_such_flow.py")
    msg = str(info.value)
    assert "'no_such_flow.py' not found; tried:" in msg
    assert str(Path(__file__).parent / "no_such_flow.py") in msg
    assert str(Path.cwd() / "no_such_flow.py") in msg
    assert isinstance(info.value, FileNotFoundError)


def test_relative_path_found_next_to_the_test_file(flow_pytester: pytest.Pytester) -> None:
    sub = flow_pytester.mkdir("sub")
    (flow_pytester.path / "hello.py").rename(sub / "hello.py")
    (sub / "test_here.py").write_text("def test_it(runner):\n    assert runner('hello.py').run().run.data.x == 2\n")
    flow_pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_syntax_error_names_file_and_line(runner: Any, tmp_path: Path) -> None:
    flow = write(tmp_path, HELLO.replace("self.x = self.alpha + 1", "self.x = = 1"))
    with pytest.raises(InvalidFlowError, match=r"syntax error in flow file .*flow.py, line 9"):
        runner(flow)


def test_missing_main_guard_fails_fast(runner: Any, tmp_path: Path) -> None:
    flow = write(tmp_path, HELLO.split("if __name__")[0])
    with pytest.raises(InvalidFlowError, match='has no `if __name__ == "__main__":` block'):
        runner(flow)


def test_file_without_flowspec(runner: Any, tmp_path: Path) -> None:
    flow = write(tmp_path, "x = 1\nif __name__ == '__main__':\n    pass\n")
    with pytest.raises(InvalidFlowError, match="No FlowSpec class found"):
        runner(flow)


def test_graph_error_leads_with_the_reason(runner: Any, tmp_path: Path) -> None:
    flow = write(tmp_path, HELLO.replace("        self.next(self.end)\n", ""))
    with pytest.raises(FlowStartError) as info:
        runner(flow).run()
    first_lines = str(info.value).splitlines()[:3]
    assert first_lines[0] == f"Metaflow could not start the run of {flow}:"
    assert "missing a self.next() transition" in "\n".join(first_lines)
    assert "Validating your flow" in info.value.stderr  # full logs kept
    assert isinstance(info.value, RuntimeError)


def test_import_error_in_the_child_shows_exception_and_line(runner: Any, tmp_path: Path) -> None:
    flow = write(tmp_path, "import os\nif os.environ.get('BOOM'):\n    import not_a_module_xyz\n" + HELLO)
    with pytest.raises(FlowStartError) as info:
        runner(flow, env={"BOOM": "1"}).run()
    lines = str(info.value).splitlines()
    assert "ModuleNotFoundError: No module named 'not_a_module_xyz'" in lines[1]
    assert 'flow.py", line 3' in lines[2]


@pytest.mark.parametrize(
    "kwargs, error", [({"beta": 1}, "beta"), ({"alpha": "many"}, "alpha")], ids=["unknown", "ill-typed"]
)
def test_bad_parameters_keep_metaflows_message_and_the_cwd(
    runner: Any, tmp_path: Path, kwargs: dict, error: str
) -> None:
    cwd = os.getcwd()
    with pytest.raises((TypeError, ValueError), match=error):
        runner(FLOWS / "hello.py", cwd=str(tmp_path)).run(**kwargs)
    assert os.getcwd() == cwd
