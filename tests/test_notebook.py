"""run_notebook: notebooks executed in a real Jupyter kernel inside the test's store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip(
    "nbformat", reason="notebook tests need the extra pytest-metaflow[notebook] (nbformat, nbclient, ipykernel)"
)
pytest.importorskip("nbclient", reason="notebook tests need the extra pytest-metaflow[notebook] (nbclient)")
pytest.importorskip("ipykernel", reason="notebook tests need the extra pytest-metaflow[notebook] (ipykernel)")

FLOW_CELL = """\
from metaflow import FlowSpec, NBRunner, Parameter, step


class SquareFlow(FlowSpec):
    n = Parameter("n", default=2, type=int)

    @step
    def start(self):
        self.square = self.n * self.n
        self.next(self.end)

    @step
    def end(self):
        pass


run = NBRunner(SquareFlow, pylint=False).nbrun(n=7)"""


def write_notebook(path: Path, cells: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, str(path))
    return path


@pytest.fixture
def nb_pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    return pytester  # with the minimal inner ini of conftest._inner_ini


def test_notebook_runs_in_the_test_store(nb_pytester: pytest.Pytester) -> None:
    write_notebook(
        nb_pytester.path / "square.ipynb",
        [FLOW_CELL, "import os\nprint(run.pathspec, run.data.square, os.environ['METAFLOW_DATASTORE_SYSROOT_LOCAL'])"],
    )
    nb_pytester.makepyfile(
        """
        from metaflow import Flow

        def test_square(run_notebook, metaflow_store):
            nb = run_notebook("square.ipynb")
            run = Flow("SquareFlow").latest_run
            assert run.successful and run.data.square == 49
            printed = nb.cells[1].outputs[0].text
            assert printed.split() == [run.pathspec, "49", str(metaflow_store.path)]

        def test_other_test_sees_no_run(metaflow_store):
            from metaflow import Metaflow
            assert list(Metaflow()) == []
        """
    )
    result = nb_pytester.runpytest_subprocess()
    result.assert_outcomes(passed=2)
    assert not (nb_pytester.path / ".metaflow").exists()
    assert [p.name for p in nb_pytester.path.glob("*.py")] == ["test_notebook_runs_in_the_test_store.py"]


def test_cell_error_reports_source_and_traceback_and_kernel_is_gone(nb_pytester: pytest.Pytester) -> None:
    write_notebook(
        nb_pytester.path / "bad.ipynb",
        [
            "import os\nopen('kernel.pid', 'w').write(str(os.getpid()))",
            "def check(x):\n    raise ValueError(f'boom {x}')\n\ncheck(42)",
            "print('never')",
        ],
    )
    nb_pytester.makepyfile(
        """
        import os
        from pathlib import Path

        def test_bad(run_notebook):
            run_notebook("bad.ipynb")

        def test_kernel_was_killed():
            pid = int(Path("kernel.pid").read_text())
            assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read()
            assert Path("kernel.pid").read_text().isdigit()
        """
    )
    result = nb_pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*NotebookCellError: cell 1 of */bad.ipynb raised ValueError: boom 42",
            "*---- cell 1 source ----",
            "*def check(x):",
            "*check(42)",
            "*---- kernel traceback ----",
            "*ValueError*Traceback*",
            "*raise ValueError(f'boom {x}')",
            "*ValueError: boom 42",
        ]
    )
    result.stdout.no_fnmatch_line("*never*")
    result.stdout.no_fnmatch_line("*\x1b[[]*")


def test_failed_flow_in_notebook_shows_runs_and_leaves_no_files(nb_pytester: pytest.Pytester) -> None:
    write_notebook(
        nb_pytester.path / "failing.ipynb",
        [
            FLOW_CELL.replace("self.square = self.n * self.n", "raise KeyError('no square for you')"),
            "assert run.successful, 'the flow failed'",
        ],
    )
    write_notebook(
        nb_pytester.path / "graph.ipynb",
        # A graph error: NBRunner raises before its cleanup and leaves its flow file in the cwd.
        [FLOW_CELL.replace("self.next(self.end)", "pass")],
    )
    write_notebook(
        nb_pytester.path / "split.ipynb",
        # NBRunner called outside the flow's cell: it raises and leaves an empty flow file.
        FLOW_CELL.split("\n\nrun = ")[0:1] + ["NBRunner(SquareFlow).nbrun()"],
    )
    nb_pytester.makepyfile(
        """
        import pytest
        from pytest_metaflow import NotebookCellError

        def test_failing(run_notebook):
            run_notebook("failing.ipynb")

        def test_graph(run_notebook):
            with pytest.raises(NotebookCellError, match="raised RuntimeError"):
                run_notebook("graph.ipynb")

        def test_flow_not_in_the_cell(run_notebook):
            with pytest.raises(NotebookCellError, match="doesn't contain any class that inherits"):
                run_notebook("split.ipynb")
        """
    )
    result = nb_pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1, passed=2)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: the flow failed",
            "*metaflow runs*",
            "run SquareFlow/* is failed",
            "*KeyError*no square for you*",
        ]
    )
    # NBRunner's leftover SquareFlowXXXXXXXX.py was removed at teardown.
    assert [p.name for p in nb_pytester.path.glob("*.py")] == [
        "test_failed_flow_in_notebook_shows_runs_and_leaves_no_files.py"
    ]


def test_nbrunner_inside_a_kernel_runs_a_flow_typed_into_a_cell(nb_pytester: pytest.Pytester) -> None:
    # pytest itself runs inside the kernel (as with ipytest); the flow class lives in
    # the kernel's __main__, so nbrunner takes its cell like Metaflow's NBRunner would.
    write_notebook(
        nb_pytester.path / "inside.ipynb",
        [
            FLOW_CELL.replace("\n\nrun = NBRunner(SquareFlow, pylint=False).nbrun(n=7)", "\n\nrun = None"),
            '''\
import pathlib, pytest
pathlib.Path("kernel_tests").mkdir()
pathlib.Path("kernel_tests/test_in_kernel.py").write_text("""
import __main__

def test_cell_flow(nbrunner):
    run = nbrunner(__main__.SquareFlow).nbrun(n=5)
    assert run.data.square == 25 and run.pathspec.startswith("SquareFlow/")
""")
code = pytest.main(["-q", "-p", "no:cacheprovider", "kernel_tests"])
assert code == 0, code''',
        ],
    )
    nb_pytester.makepyfile(
        """
        def test_notebook(run_notebook):
            nb = run_notebook("inside.ipynb")
            printed = "".join(o.get("text", "") for o in nb.cells[1].outputs)
            assert "1 passed" in printed
        """
    )
    result = nb_pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)


def test_missing_extra_skips_with_the_reason(nb_pytester: pytest.Pytester) -> None:
    nb_pytester.makeconftest("import sys\nsys.modules['nbclient'] = None  # as if not installed\n")
    write_notebook(nb_pytester.path / "any.ipynb", ["1 + 1"])
    nb_pytester.makepyfile(
        """
        def test_notebook(run_notebook):
            run_notebook("any.ipynb")
        """
    )
    result = nb_pytester.runpytest_subprocess("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*run_notebook needs nbclient: pip install 'pytest-metaflow[[]notebook[]]'"])


def test_cell_timeout_kills_the_kernel_and_the_runs_it_started(nb_pytester: pytest.Pytester) -> None:
    pids = nb_pytester.mkdir("pids")
    write_notebook(
        nb_pytester.path / "slow.ipynb",
        [
            f"""\
import os, pathlib, time
from metaflow import FlowSpec, NBRunner, step

PIDS = pathlib.Path({str(pids)!r})


class SleepyFlow(FlowSpec):
    @step
    def start(self):
        (PIDS / str(os.getpid())).write_text("task")
        time.sleep(300)
        self.next(self.end)

    @step
    def end(self):
        pass


(PIDS / str(os.getpid())).write_text("kernel")
NBRunner(SleepyFlow, pylint=False).nbrun()""",
        ],
    )
    nb_pytester.makepyfile(
        """
        def test_slow(run_notebook):
            run_notebook("slow.ipynb", timeout=60)  # generous: the task must start first
        """
    )
    result = nb_pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*NotebookTimeoutError: cell 0 of */slow.ipynb did not finish within run_notebook(timeout=60) s;*killed",
            "*---- cell 0 source ----",
            "*NBRunner(SleepyFlow, pylint=False).nbrun()",
        ]
    )
    result.stdout.no_fnmatch_line("*_queue.Empty*")
    result.stdout.no_fnmatch_line("*nbclient/client.py*")  # none of nbclient's frames
    result.stdout.no_fnmatch_line("*CellTimeoutError*")
    roles = {int(p.name): p.read_text() for p in pids.iterdir()}
    assert sorted(roles.values()) == ["kernel", "task"]
    for pid in roles:
        assert not _alive(pid), roles[pid]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_unreadable_notebooks_are_one_line_errors(nb_pytester: pytest.Pytester) -> None:
    (nb_pytester.path / "broken.ipynb").write_text('{"cells": [')
    (nb_pytester.path / "plain.ipynb").write_text("print('I am Python, not a notebook')\n")
    (nb_pytester.path / "other.ipynb").write_text('{"just": "json"}')
    nb_pytester.makepyfile(
        """
        import pytest
        from pytest_metaflow import NotebookError

        @pytest.mark.parametrize("name", ["broken", "plain", "other"])
        def test_bad(run_notebook, name):
            run_notebook(name + ".ipynb")
        """
    )
    result = nb_pytester.runpytest_subprocess("--tb=short")
    result.assert_outcomes(failed=3)
    for name in ("broken", "plain", "other"):
        result.stdout.fnmatch_lines(
            [f"*NotebookError: run_notebook: */{name}.ipynb is not a readable Jupyter notebook*"]
        )
    result.stdout.no_fnmatch_line("*NotJSONError*")
    result.stdout.no_fnmatch_line("*nbformat/*")
    assert len(result.outlines) < 70, result.outlines


SLEEPY_CELL = """\
import os, time
from metaflow import FlowSpec, NBRunner, step


class SleepyFlow(FlowSpec):
    @step
    def start(self):
        print("sleeping", flush=True)
        time.sleep(300)
        self.next(self.end)

    @step
    def end(self):
        pass


NBRunner(SleepyFlow, pylint=False).nbrun()"""


def _descendants_alive(root: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(root).children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]
    except psutil.Error:
        return []


def test_sigkill_of_pytest_leaves_no_kernel_run_and_no_flow_file(nb_pytester: pytest.Pytester) -> None:
    """Issue 11.5: the kernel's NBRunner runs are under the watchdog; its flow file is not in the notebook dir."""
    marker = f"nbkill-{os.getpid()}-{time.monotonic_ns()}"
    write_notebook(nb_pytester.path / "sleepy.ipynb", [SLEEPY_CELL])
    nb_pytester.makepyfile(
        """
        def test_sleepy(run_notebook):
            run_notebook("sleepy.ipynb")
        """
    )
    before = set(os.listdir(nb_pytester.path))
    env = dict(os.environ, NB_SELFTEST_MARKER=marker)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--basetemp={nb_pytester.path / 'bt'}"],
        cwd=nb_pytester.path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    from pytest_metaflow import _processes

    def marked() -> list[int]:
        return [
            p
            for p in _processes.other_pids()
            if f"NB_SELFTEST_MARKER={marker}".encode() in (_processes.read_proc(p, "environ") or b"")
        ]

    try:
        deadline = time.monotonic() + 180
        while not any(b"step" in (_processes.read_proc(p, "cmdline") or b"") for p in marked()):
            assert proc.poll() is None and time.monotonic() < deadline, "the notebook's run never started"
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 30
    while marked() and time.monotonic() < deadline:
        time.sleep(0.2)
    left = marked()
    for pid in left:  # ours: started by the pytest above
        os.kill(pid, signal.SIGKILL)
    assert left == []
    assert sorted(set(os.listdir(nb_pytester.path)) - before - {"bt"}) == []


def test_two_notebooks_in_one_directory_in_parallel(nb_pytester: pytest.Pytester) -> None:
    """Issue 11.6: no teardown deletes another test's NBRunner file."""
    for i in range(4):
        write_notebook(nb_pytester.path / f"square{i}.ipynb", [FLOW_CELL.replace("n=7", f"n={i + 2}")])
    nb_pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("i", range(4))
        def test_square(run_notebook, i):
            nb = run_notebook(f"square{i}.ipynb")
        """
    )
    result = nb_pytester.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=4)
    assert [p.name for p in nb_pytester.path.glob("*.py")] == ["test_two_notebooks_in_one_directory_in_parallel.py"]
