"""Flow imports through ``runner``: every flow that runs as ``python flow.py run`` from its
directory runs through ``runner(...)`` too, and its module-level code cannot take pytest down.

One real pytest session (``runpytest_subprocess``) holds the scenarios; each is a
test of that session and is checked by its outcome and report lines.
"""

from __future__ import annotations

import json
import os
import sys
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


# --- the same checks forked from the runtime server -----------------------------------------

OUTCOMES = """
import json, os, sys

import pytest

from pytest_metaflow import _flowimport

OUT = os.environ["OUTCOMES_FILE"]
LAUNCHER = os.environ["OUTCOMES_LAUNCHER"]


def record(name, error):
    data = json.load(open(OUT)) if os.path.exists(OUT) else {}
    data[name] = {
        "type": type(error).__name__,
        "text": str(error),
        "stdout": getattr(error, "stdout", None),
        "stderr": getattr(error, "stderr", None),
    }
    json.dump(data, open(OUT, "w"))


@pytest.mark.parametrize("name", ["raises.py", "exits3.py", "osexit0.py", "killed.py", "prints.py", "c/flow.py"])
def test_import_fails(runner, name):
    with pytest.raises(Exception) as e:
        runner(name, launcher=LAUNCHER)
    record(name, e.value)


@pytest.mark.metaflow(timeout=3)
def test_import_hangs(runner):
    with pytest.raises(Exception) as e:
        runner("hangs.py", launcher=LAUNCHER)
    record("hangs.py", e.value)


def test_sibling_helpers(runner):
    assert runner("a/flow.py", launcher=LAUNCHER).run().run.data.used == "a"


def test_counter():
    record("served", RuntimeError(str(_flowimport.served_imports)))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the runtime server is Linux-only")
@pytest.mark.skipif("COVERAGE_PROCESS_CONFIG" in os.environ, reason="runs measured by coverage start fresh")
def test_served_and_fresh_imports_fail_alike(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flow file's import checked in a child forked from the runtime server reports what a fresh child does."""
    p = pytester
    flows = {
        "raises.py": "raise ValueError('boom at import')",
        "exits3.py": "import sys\nsys.exit(3)",
        "osexit0.py": "import os\nprint('lost in the buffer')\nos._exit(0)",
        "killed.py": "import os, signal, sys\nprint('before', file=sys.stderr)\nos.kill(os.getpid(), signal.SIGTERM)",
        "prints.py": "import sys\nprint('to stdout')\nprint('to stderr', file=sys.stderr)\nraise RuntimeError('after')",
        "hangs.py": "import time\ntime.sleep(120)",
    }
    for name, code in flows.items():
        (p.path / name).write_text(flow(name.title().replace(".Py", "").replace("_", "") + "Flow", imports=code))
    for name, helper in (("a", "WHICH = 'a'\n"), ("c", "raise KeyError('helper broke')\n")):
        (p.path / name).mkdir()
        (p.path / name / "helpers.py").write_text(helper)
        (p.path / name / "flow.py").write_text(
            flow(f"Flow{name.upper()}", imports="import helpers", attrs=HELPERS_FLOW_ATTRS, start=HELPERS_FLOW_START)
        )
    p.makepyfile(test_outcomes=textwrap.dedent(OUTCOMES))
    log = p.path / "server.log"
    results = {}
    for arm, launcher, knob in (("served", "fork", "1"), ("fresh", "fork", "0"), ("exec", "exec", "1")):
        out = p.path / f"{arm}.json"
        monkeypatch.setenv("OUTCOMES_FILE", str(out))
        monkeypatch.setenv("OUTCOMES_LAUNCHER", launcher)
        monkeypatch.setenv("PYTEST_METAFLOW_RUNTIME_SERVER", knob)
        monkeypatch.setenv("PYTEST_METAFLOW_SERVER_LOG", str(log))
        result = p.runpytest_subprocess("-p", "no:randomly")
        result.assert_outcomes(passed=9)
        results[arm] = json.loads(out.read_text())
    served = results.pop("served")
    assert served.pop("served")["text"] == "8"  # every distinct flow file (the cache saves a second import)
    assert results["fresh"].pop("served")["text"] == "0"
    assert results["exec"].pop("served")["text"] == "0"
    logged = [line for line in log.read_text().splitlines() if " import " in line]
    assert not [line for line in logged if "runs fresh" in line], logged
    assert len(logged) == 8, logged
    for arm, outcomes in results.items():
        assert outcomes == served, arm  # type, message, captured stdout and stderr (tracebacks too)
    by_name = {name: (o["type"], o["text"]) for name, o in served.items()}
    path = str(p.path)
    assert by_name["raises.py"] == (
        "FlowStartError",
        f"importing the flow file {path}/raises.py failed: ValueError: boom at import\n"
        f"    at {path}/raises.py, line 3: raise ValueError('boom at import')",
    )
    assert by_name["exits3.py"][1].startswith(f"the flow file {path}/exits3.py called sys.exit(3) while being")
    assert by_name["osexit0.py"][1].startswith(f"the flow file {path}/osexit0.py ended the process with exit code 0")
    assert by_name["killed.py"][1] == (
        f"the flow file {path}/killed.py was killed by signal SIGTERM while being imported; "
        "module-level code must not end the process\nbefore"
    )
    assert served["prints.py"]["stdout"] == "to stdout\n"
    assert served["prints.py"]["stderr"] == "to stderr\n"
    assert by_name["hangs.py"][0] == "RunTimeoutError"
    assert "KeyError: 'helper broke'" in by_name["c/flow.py"][1]
    assert f"at {path}/c/flow.py, line 3: import helpers" in by_name["c/flow.py"][1]
    assert f'File "{path}/c/helpers.py", line 1' in served["c/flow.py"]["stderr"]  # the child's traceback
