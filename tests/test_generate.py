"""``pytest-metaflow generate``: tests written from a run pass at once and catch a one-line change."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLES = Path(__file__).parent.parent / "sample_flows"


@pytest.fixture(autouse=True)
def _not_an_xdist_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    # Under an outer `pytest -n 2` the inner pytest would inherit PYTEST_XDIST_WORKER and
    # syrupy would take it for a worker of its own (no snapshot report, no cleanup).
    for var in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(var, raising=False)


def generate(pytester: pytest.Pytester, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the console script's code in a fresh interpreter (as the installed script would)."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; from pytest_metaflow.cli import main; sys.exit(main())", "generate", *args],
        cwd=pytester.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def copy_flow(pytester: pytest.Pytester, name: str) -> Path:
    target = pytester.path / "flows" / name
    target.parent.mkdir(exist_ok=True)
    shutil.copy(SAMPLES / name, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


def failed_tests(result: pytest.RunResult) -> list[str]:
    return sorted(line.split("::")[1].split()[0] for line in result.outlines if line.startswith("FAILED "))


def test_linear_flow(pytester: pytest.Pytester) -> None:
    flow = copy_flow(pytester, "train_flow.py")
    done = generate(pytester, "flows/train_flow.py", "--params", "epochs=2", "--out", "gen")
    assert done.returncode == 0, done.stderr
    assert "wrote gen/test_train_flow_steps.py (4 tests: start, train, evaluate, end)" in done.stdout
    module = (pytester.path / "gen" / "test_train_flow_steps.py").read_text()
    assert "def test_train(runner, base_run, artifact_snapshot):" in module
    assert "runner_factory(FLOW).run(epochs=2)" in module
    inputs = (pytester.path / "gen" / "train_flow_inputs" / "train.py").read_text()
    assert "'epochs': 2," in inputs and "(9, 19.0)" in inputs

    pytester.runpytest_subprocess("gen", "-n", "2").assert_outcomes(passed=4)

    edit(flow, "self.w, self.b = w, b", "self.w, self.b = w, b + 1")
    result = pytester.runpytest_subprocess("gen")
    result.assert_outcomes(passed=3, failed=1)
    assert failed_tests(result) == ["test_train"]
    result.stdout.fnmatch_lines(
        ["*artifacts of step 'train' differ from snapshot test_train[[]train[]]*", "*  b: 0.775* -> 1.775*"]
    )

    pytester.runpytest_subprocess("gen", "--snapshot-update").assert_outcomes(passed=4)
    pytester.runpytest_subprocess("gen").assert_outcomes(passed=4)

    # A one-line change that sets a new artifact: the step's test fails, naming it.
    edit(flow, '        print(f"loss {self.loss:.4f}")\n', "        self.rmse = self.loss**0.5\n")
    result = pytester.runpytest_subprocess("gen", "-n", "2")
    result.assert_outcomes(passed=3, failed=1)
    assert failed_tests(result) == ["test_evaluate"]
    result.stdout.fnmatch_lines(
        [
            "*artifacts of step 'evaluate' differ from snapshot test_evaluate[[]evaluate[]]*",
            "*  rmse: new artifact, not in the snapshot*",
            "*run `pytest --snapshot-update` to accept the new values*",
        ]
    )
    pytester.runpytest_subprocess("gen", "--snapshot-update").assert_outcomes(passed=4)
    assert "rmse = " in (pytester.path / "gen" / "__snapshots__" / "test_train_flow_steps.ambr").read_text()
    pytester.runpytest_subprocess("gen").assert_outcomes(passed=4)


def test_branch_and_join(pytester: pytest.Pytester) -> None:
    flow = copy_flow(pytester, "branch_flow.py")
    done = generate(pytester, "flows/branch_flow.py", "--out", "gen")
    assert done.returncode == 0, done.stderr
    join_inputs = (pytester.path / "gen" / "branch_flow_inputs" / "join.py").read_text()
    assert "'count_words': {" in join_inputs and "'longest_word': {" in join_inputs
    pytester.runpytest_subprocess("gen").assert_outcomes(passed=5)

    edit(flow, "max(self.words, key=len)", "min(self.words, key=len)")
    result = pytester.runpytest_subprocess("gen")
    assert failed_tests(result) == ["test_longest_word"]
    result.stdout.fnmatch_lines(["*  longest: 'quick' -> 'the'*"])


def test_foreach_and_its_join(pytester: pytest.Pytester) -> None:
    flow = copy_flow(pytester, "foreach_flow.py")
    done = generate(pytester, "flows/foreach_flow.py", "--params", "shards=3", "--out", "gen")
    assert done.returncode == 0, done.stderr
    reduce_inputs = (pytester.path / "gen" / "foreach_flow_inputs" / "reduce.py").read_text()
    assert "'process[0]': {" in reduce_inputs and "'process[2]': {" in reduce_inputs
    pytester.runpytest_subprocess("gen", "-n", "2").assert_outcomes(passed=4)

    edit(flow, "sum(i.total for i in inputs)", "sum(i.total for i in inputs) + 1")
    result = pytester.runpytest_subprocess("gen")
    assert failed_tests(result) == ["test_reduce"]
    result.stdout.fnmatch_lines(["*artifacts of step 'reduce' differ*", "*  grand_total: 435 -> 436*"])


def test_recorded_data_over_max_bytes_is_refused(pytester: pytest.Pytester) -> None:
    copy_flow(pytester, "train_flow.py")
    done = generate(pytester, "flows/train_flow.py", "--params", "epochs=1", "--out", "gen", "--max-bytes", "300")
    assert done.returncode == 1
    assert "more than --max-bytes 300 B; largest:" in done.stderr
    assert "train: inputs.data" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (pytester.path / "gen").exists()


def test_bad_command_lines_get_short_errors(pytester: pytest.Pytester) -> None:
    done = generate(pytester, "nowhere.py")
    assert done.returncode == 1
    assert done.stderr.strip() == "pytest-metaflow generate: error: flow file nowhere.py does not exist"
    copy_flow(pytester, "train_flow.py")
    done = generate(pytester, "flows/train_flow.py", "--params", "epochs")
    assert done.returncode == 1
    assert "--params takes NAME=VALUE, got 'epochs'" in done.stderr


def test_an_existing_run_read_through_the_users_configuration(pytester: pytest.Pytester) -> None:
    flow = copy_flow(pytester, "branch_flow.py")
    # "The user's configuration": a local datastore of their own, outside any test store.
    env = {
        **os.environ,
        "METAFLOW_DEFAULT_DATASTORE": "local",
        "METAFLOW_DEFAULT_METADATA": "local",
        "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(pytester.path / "mystore"),
        "METAFLOW_HOME": str(pytester.path / "home"),
        "METAFLOW_USER": "tester",
        "METAFLOW_CLIENT_CACHE_PATH": str(pytester.path / "client_cache"),  # default: /tmp/metaflow_client
    }
    subprocess.run(
        [sys.executable, str(flow), "--no-pylint", "run", "--text", "a bb ccc"],
        env=env,
        cwd=pytester.path,
        check=True,
        capture_output=True,
        timeout=600,
    )
    run_id = (pytester.path / "mystore" / ".metaflow" / "BranchFlow" / "latest_run").read_text().strip()
    done = generate(pytester, "flows/branch_flow.py", "--run", f"BranchFlow/{run_id}", "--out", "gen", env=env)
    assert done.returncode == 0, done.stderr
    module = (pytester.path / "gen" / "test_branch_flow_steps.py").read_text()
    assert "runner_factory(FLOW).run(text='a bb ccc')" in module
    pytester.runpytest_subprocess("gen").assert_outcomes(passed=5)
