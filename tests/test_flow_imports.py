"""Flow imports through ``runner``: every flow that runs as ``python flow.py run`` from its
directory runs through ``runner(...)`` too, and its module-level code cannot take pytest down.

One real pytest session (``runpytest_subprocess``) holds the scenarios; each is a
test of that session and is checked by its outcome and report lines.
"""

from __future__ import annotations

import os
import textwrap

import pytest

FLOW = """
{head}from metaflow import FlowSpec, Parameter, step
{imports}

class {name}(FlowSpec):
{attrs}
    @step
    def start(self):
{start}
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    {name}()
"""


def flow(name: str, *, head: str = "", imports: str = "", attrs: str = "    pass", start: str = "        pass") -> str:
    return FLOW.format(name=name, head=head, imports=imports, attrs=attrs, start=start)


SESSION = """
import os
import sys

import pytest

import helpers  # the tests' own helpers.py, already imported when the flows are

from pytest_metaflow import FlowStartError, InvalidFlowError


def test_flows_beside_helpers_get_their_own(runner):
    a = runner("a/flow.py").run()
    b = runner("b/flow.py").run()
    # Parameters are built in this process from the module-level import: b must not get a's.
    assert (a.run.data.which, a.run.data.used) == ("a", "a")
    assert (b.run.data.which, b.run.data.used) == ("b", "b")
    assert sys.modules["helpers"] is helpers and helpers.WHICH == "tests"
    assert not any(p.endswith(("/a", "/b")) for p in sys.path)


def test_package_layout_flow(runner):
    assert runner("proj/pkg/pflow.py").run().run.data.k == 7


def test_latin1_flow(runner):
    assert runner("latin.py").run().run.data.word == "caf\\u00e9"


@pytest.mark.parametrize("name, message", [
    ("exits.py", "ended the process with exit code 3 (os._exit() or a crash) while being imported"),
    ("sys_exits.py", "called sys.exit(0) while being imported"),
    ("broken.py", "failed: ModuleNotFoundError: No module named 'not_a_module_xyz'"),
])
def test_module_level_exit_or_error(runner, name, message):
    with pytest.raises(FlowStartError) as e:
        runner(name)
    assert message in str(e.value), str(e.value)
    # reason first: the first line says what happened
    assert str(e.value).splitlines()[0].startswith(("the flow file", "importing the flow file"))


def test_base_flow_is_not_a_flow(runner):
    with pytest.raises(InvalidFlowError, match="defines TrackedFlowSpec but has no .* block.*base flow"):
        runner("base.py")


def test_directory_and_loop(runner):
    with pytest.raises(InvalidFlowError, match="is a directory"):
        runner("a")
    with pytest.raises(InvalidFlowError, match="symbolic link loop"):
        runner("loop.py")


def test_bad_parameter_is_reported_at_the_call(runner):
    runner("a/flow.py").run(nope=1)


def test_still_alive():
    pass
"""

HELPERS_FLOW_ATTRS = '    which = Parameter("which", default=helpers.WHICH)\n'
HELPERS_FLOW_START = "        self.used = helpers.WHICH"


def test_flow_imports_are_isolated_and_safe(pytester: pytest.Pytester) -> None:
    p = pytester
    p.makepyfile(helpers="WHICH = 'tests'\n")
    for name in ("a", "b"):
        (p.path / name).mkdir()
        (p.path / name / "helpers.py").write_text(f"WHICH = {name!r}\n")
        (p.path / name / "flow.py").write_text(
            flow(f"Flow{name.upper()}", imports="import helpers", attrs=HELPERS_FLOW_ATTRS, start=HELPERS_FLOW_START)
        )
    pkg = p.path / "proj" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "util.py").write_text("K = 7\n")
    (pkg / "pflow.py").write_text(flow("PkgFlow", imports="from pkg.util import K", start="        self.k = K"))
    latin = flow(
        "LatinFlow", head="# -*- coding: latin-1 -*-\n", imports='NAME = "café"', start="        self.word = NAME"
    )
    (p.path / "latin.py").write_bytes(latin.encode("latin-1"))
    (p.path / "exits.py").write_text(flow("ExitFlow", imports="import os\nos._exit(3)"))
    (p.path / "sys_exits.py").write_text(flow("SysExitFlow", imports="import sys\nsys.exit(0)"))
    (p.path / "broken.py").write_text(flow("BrokenFlow", imports="import not_a_module_xyz"))
    base = flow("TrackedFlowSpec")
    (p.path / "base.py").write_text(base[: base.index("\n\nif __name__")] + "\n")
    os.symlink(p.path / "loop.py", p.path / "loop.py")
    p.makepyfile(test_session=textwrap.dedent(SESSION))
    result = p.runpytest_subprocess("-rA")
    result.assert_outcomes(passed=9, failed=1)
    # The parameter error: the test's line and Metaflow's message, none of the plugin's frames.
    result.stdout.fnmatch_lines(
        [
            "*_ test_bad_parameter_is_reported_at_the_call _*",
            '>       runner("a/flow.py").run(nope=1)',
            "E       ValueError: *flow.py: Unknown argument: 'nope', possible args are: which, *",
        ]
    )
    result.stdout.no_fnmatch_line("*pytest_metaflow/*")
