"""Flow files read as Python reads them, one "is it a flow" rule, and imports that stay in their lane.

Direct tests of ``_flowfile`` and ``_flowimport`` (no flow runs); the same
behaviours through real pytest sessions are in ``test_flow_imports.py``.
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_metaflow import FlowStartError, InvalidFlowError
from pytest_metaflow._flowfile import check, inspect, locate, read_source
from pytest_metaflow._flowimport import forget, isolated_imports, validate

FLOW = """
from metaflow import FlowSpec, step

class {name}(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""
MAIN = '\nif __name__ == "__main__":\n    {name}()\n'


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_latin1_coding_cookie_is_decoded_like_python(tmp_path: Path) -> None:
    source = (
        "# -*- coding: latin-1 -*-\n" + FLOW.format(name="CafeFlow") + 'NAME = "café"\n' + MAIN.format(name="CafeFlow")
    )
    path = tmp_path / "cafe.py"
    path.write_bytes(source.encode("latin-1"))
    assert 'NAME = "café"' in read_source(path)
    info = check(str(path))
    assert info.flow == "CafeFlow" and info.is_flow


def test_undecodable_file_is_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.py"
    path.write_bytes(b"from metaflow import FlowSpec\nNAME = '\xff\xfe'\n")
    with pytest.raises(InvalidFlowError) as e:
        read_source(path)
    message = str(e.value)
    assert "\n" not in message
    assert "not valid utf-8 (byte 0xff on line 2)" in message and "coding cookie" in message


def test_unknown_codec_in_cookie(tmp_path: Path) -> None:
    path = tmp_path / "bad.py"
    path.write_bytes(b"# coding: klingon\nx = 1\n")
    with pytest.raises(InvalidFlowError, match="klingon"):
        read_source(path)


def test_directory_and_symlink_loop_are_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "flow.py").mkdir()
    with pytest.raises(InvalidFlowError, match=r"flow\.py is a directory, not a Python file$"):
        locate("flow.py", [tmp_path])
    os.symlink(tmp_path / "loop_b.py", tmp_path / "loop_a.py")
    os.symlink(tmp_path / "loop_a.py", tmp_path / "loop_b.py")
    with pytest.raises(InvalidFlowError, match=r"loop_a\.py is a symbolic link loop$"):
        locate("loop_a.py", [tmp_path])
    with pytest.raises(InvalidFlowError, match="symbolic link loop"):
        read_source(tmp_path / "loop_a.py")


def test_missing_file_lists_every_path_tried(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as e:
        locate("nope.py", [tmp_path / "a", tmp_path / "b"])
    assert str(tmp_path / "a" / "nope.py") in str(e.value) and str(tmp_path / "b" / "nope.py") in str(e.value)


def test_one_rule_base_flows_are_not_flows(tmp_path: Path) -> None:
    base = write(tmp_path / "base.py", FLOW.format(name="TrackedFlowSpec"))
    info = inspect(base)
    assert info.flow == "TrackedFlowSpec" and not info.has_main and not info.is_flow
    with pytest.raises(
        InvalidFlowError, match='defines TrackedFlowSpec but has no `if __name__ == "__main__":` block.*base flow'
    ):
        check(str(base))
    # A flow whose base class is imported: the __main__ block names it.
    child = write(
        tmp_path / "child.py",
        "from base import TrackedFlowSpec\n\nclass Mine(TrackedFlowSpec):\n    pass\n\n"
        'if "__main__" == __name__:\n    Mine()\n',
    )
    assert inspect(child).flow == "Mine" and inspect(child).is_flow
    # A helper module and a main-only script are not flows either.
    assert not inspect(write(tmp_path / "helpers.py", "X = 1\n")).is_flow
    assert not inspect(write(tmp_path / "script.py", 'if __name__ == "__main__":\n    print(1)\n')).is_flow


def test_isolated_imports_give_each_flow_its_own_siblings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The test process already has a "helpers" (as a test suite's own helpers.py would be).
    write(tmp_path / "tests" / "helpers.py", "WHICH = 'tests'\n")
    monkeypatch.syspath_prepend(str(tmp_path / "tests"))
    monkeypatch.delitem(sys.modules, "helpers", raising=False)
    import helpers  # type: ignore[import-not-found]

    seen = []
    for name in ("a", "b"):
        write(tmp_path / name / "helpers.py", f"WHICH = {name!r}\n")
        flow = write(
            tmp_path / name / "flow.py",
            "import helpers\nimport sys\nsys.path.append('/nowhere')\nVALUE = helpers.WHICH\n",
        )
        path_before = list(sys.path)
        namespace: dict = {}
        with isolated_imports(str(flow)):
            exec(compile(flow.read_text(), str(flow), "exec"), namespace)
        seen.append(namespace["VALUE"])
        assert sys.path == path_before  # the flow's sys.path.append is undone
        assert sys.modules["helpers"] is helpers
    assert seen == ["a", "b"]
    assert helpers.WHICH == "tests"
    monkeypatch.delitem(sys.modules, "helpers")


def test_package_layout_flow_imports_its_package(tmp_path: Path) -> None:
    write(tmp_path / "proj" / "pkg" / "__init__.py", "")
    write(tmp_path / "proj" / "pkg" / "util.py", "K = 7\n")
    flow = write(tmp_path / "proj" / "pkg" / "flow.py", "from pkg.util import K\n")
    namespace: dict = {}
    with isolated_imports(str(flow)):
        exec(compile(flow.read_text(), str(flow), "exec"), namespace)
    assert namespace["K"] == 7
    assert "pkg" not in sys.modules and "pkg.util" not in sys.modules


@pytest.mark.parametrize(
    "module_code, expected",
    [
        (
            "import os\nos._exit(3)\n",
            r"ended the process with exit code 3 \(os._exit\(\) or a crash\) while being imported",
        ),
        ("import sys\nsys.exit(0)\n", r"called sys.exit\(0\) while being imported; module-level code must not exit"),
        (
            "import not_a_module_xyz\n",
            r"^importing the flow file .*bad.py failed: ModuleNotFoundError: No module named 'not_a_module_xyz'\n    at .*bad.py, line 1: import not_a_module_xyz$",
        ),
        (
            "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
            r"was killed by signal SIGKILL while being imported",
        ),
    ],
)
def test_module_level_exit_or_error_is_a_flow_start_error(tmp_path: Path, module_code: str, expected: str) -> None:
    path = tmp_path / "bad.py"
    path.write_text(module_code)
    with pytest.raises(FlowStartError, match=expected):
        validate(str(path), path.read_text())


def test_validation_runs_once_per_content(tmp_path: Path) -> None:
    forget()
    marker = tmp_path / "imports"
    path = tmp_path / "counted.py"
    path.write_text(f"open({str(marker)!r}, 'a').write('x')\n")
    validate(str(path), path.read_text())
    validate(str(path), path.read_text())
    assert marker.read_text() == "x"  # the second call cost a hash, no child
    path.write_text(path.read_text() + "# edited\n")
    validate(str(path), path.read_text())
    assert marker.read_text() == "xx"
    assert str(path) in forget()


def test_slow_module_level_code_is_bounded_by_the_timeout(tmp_path: Path) -> None:
    from pytest_metaflow import RunTimeoutError

    path = tmp_path / "slow.py"
    path.write_text("import time\ntime.sleep(600)\n")
    with pytest.raises(
        RunTimeoutError, match="importing the flow file .*slow.py took more than the run timeout of 2 s"
    ):
        validate(str(path), path.read_text(), timeout=2)
