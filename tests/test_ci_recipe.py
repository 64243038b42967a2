"""docs/ci.md's CI recipe works: its workflow files parse, and their test command, run here
verbatim on a small flow repository, gives what the upload steps collect.

The flow repository has one passing and one failing test (on purpose), so that the
run exercises everything the recipe promises: the exit status, the JUnit XML, the
kept store of the failed test, and coverage of the step code.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="needs pyyaml (in the test extra)")

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "ci.md"
GITHUB = ROOT / "docs" / "examples" / "github-workflow.yml"
GITLAB = ROOT / "docs" / "examples" / "gitlab-ci.yml"

FLOW = """\
from metaflow import FlowSpec, Parameter, step


class HelloFlow(FlowSpec):
    n = Parameter("n", default=3, type=int)

    @step
    def start(self):
        self.squares = [i * i for i in range(self.n)]
        self.next(self.end)

    @step
    def end(self):
        if self.n > 100:
            self.big = True  # never runs: coverage must report this line missed
        self.total = sum(self.squares)  # runs in a task process only


if __name__ == "__main__":
    HelloFlow()
"""

TESTS = """\
from pytest_metaflow import assert_artifacts, assert_run_succeeded


def test_total(runner):
    result = runner("flows/hello_flow.py").run(n=4)
    assert_run_succeeded(result)
    assert_artifacts(result, total=14)


def test_wrong_total(runner):  # fails on purpose: its store is kept and uploaded
    result = runner("flows/hello_flow.py").run(n=2)
    assert_artifacts(result, total=999)
"""


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
    return data


def _one_line(command: str) -> str:
    return " ".join(command.split())


def _github_test_step(workflow: dict[str, Any]) -> dict[str, Any]:
    (job,) = workflow["jobs"].values()
    (step,) = [s for s in job["steps"] if "pytest -" in s.get("run", "")]
    return step


def test_doc_quotes_the_workflow_files_verbatim() -> None:
    """docs/ci.md shows the files the tests below run, not a copy that can drift."""
    doc = DOC.read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, re.S)
    assert GITHUB.read_text() in blocks
    assert GITLAB.read_text() in blocks


def test_github_workflow_is_complete() -> None:
    workflow = _load(GITHUB)
    # YAML 1.1 reads the key `on` as True; GitHub reads it as "on".
    assert workflow.get("on", workflow.get(True)) is not None
    (job,) = workflow["jobs"].values()
    assert isinstance(job["timeout-minutes"], int) and job["timeout-minutes"] > 0
    steps = job["steps"]
    install = next(s for s in steps if "pip install" in s.get("run", ""))
    for package in ("pytest-metaflow", "pytest-xdist", "pytest-cov"):
        assert package in install["run"].split()
    command = _one_line(_github_test_step(workflow)["run"])
    for option in (
        "-n auto",
        "--dist loadfile",
        "--basetemp=build/pytest",
        "--metaflow-keep=failed",
        "--metaflow-timeout=",
        "--junitxml=build/junit.xml",
        "--cov=flows",
    ):
        assert option in command, option
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    # Uploaded also (above all) when the tests failed.
    assert "always()" in upload["if"] or "!cancelled()" in upload["if"]
    paths = upload["with"]["path"].split()
    assert {"build/junit.xml", "build/pytest/metaflow-kept/"} <= set(paths)


def test_gitlab_job_runs_the_same_command() -> None:
    (job,) = _load(GITLAB).values()
    github_command = _one_line(_github_test_step(_load(GITHUB))["run"])
    assert [_one_line(c) for c in job["script"] if "pytest -" in c] == [github_command]
    assert job["timeout"] and job["artifacts"]["when"] == "always"
    assert job["artifacts"]["reports"]["junit"] == "build/junit.xml"
    assert "build/pytest/metaflow-kept/" in job["artifacts"]["paths"]
    assert re.compile(job["coverage"].strip("/")).pattern  # a valid regex
    assert re.search(job["coverage"].strip("/"), "TOTAL                 12      1    92%", re.M)


@pytest.fixture
def flow_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "flow-repo"
    (repo / "flows").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "flows" / "hello_flow.py").write_text(FLOW)
    (repo / "tests" / "test_hello.py").write_text(TESTS)
    (repo / "requirements.txt").write_text("# the flows' own dependencies\n")
    (repo / "pytest.ini").write_text(
        textwrap.dedent("""\
        [pytest]
        testpaths = tests
        asyncio_default_fixture_loop_scope = function
        """)
    )
    return repo


def test_workflow_command_runs_on_a_flow_repo(flow_repo: Path) -> None:
    workflow = _load(GITHUB)
    step = _github_test_step(workflow)
    command = step["run"]
    assert "${{" not in command, "the test command must run outside GitHub as it is"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "COV_CORE_", "COVERAGE_")) and k not in ("USER", "USERNAME")
    }
    # As on a CI runner: CI set, no USER; `python` is this interpreter. `-n auto` stays in the
    # command; this machine's rule (at most 2 workers) is set through xdist's own variable.
    env.update(
        CI="true",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTEST_XDIST_AUTO_NUM_WORKERS="2",
    )
    # GitHub runs `run:` with `bash -e {0}`.
    proc = subprocess.run(
        ["bash", "-e", "-c", command], cwd=flow_repo, env=env, capture_output=True, text=True, timeout=900
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-4000:]  # one test fails on purpose
    assert re.search(r"1 failed, 1 passed", proc.stdout), out[-4000:]
    assert "created: 2/2 workers" in proc.stdout, out[-4000:]

    # Everything the upload step names is there.
    paths = _load(GITHUB)["jobs"]["test"]["steps"][-1]["with"]["path"].split()
    for path in paths:
        assert (flow_repo / path).exists(), f"{path} was not written\n{out[-3000:]}"

    # JUnit XML: both tests, one failure, the run recorded on the test case.
    suite = ET.parse(flow_repo / "build" / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    props = [p.get("value") for p in suite.iter("property") if p.get("name") == "metaflow_run"]
    assert any(v and v.startswith("HelloFlow/") for v in props), props

    # The failed test's store was kept, and only that one.
    kept = list((flow_repo / "build" / "pytest" / "metaflow-kept").iterdir())
    assert len(kept) == 1 and "test_wrong_total" in kept[0].name, kept
    assert "store kept in" in proc.stdout

    # docs/ci.md's way in after downloading the artifact elsewhere: the store goes back at its
    # path through a symlink, then the report's snippet reads the run.
    downloaded = flow_repo.parent / "downloaded"
    shutil.move(str(kept[0].parent), str(downloaded))
    kept[0].parent.symlink_to(downloaded, target_is_directory=True)
    found = re.search(r"open it with the Metaflow client:\n\n((?: {4}.*\n)+)", proc.stdout)
    assert found, proc.stdout[-3000:]
    snippet = textwrap.dedent(found.group(1))
    assert 'run = Run("HelloFlow/' in snippet, snippet
    client = subprocess.run(
        [sys.executable, "-c", snippet + "\nprint(run.data.total, run['start'].task.data.squares)"],
        cwd=flow_repo.parent,
        env={
            **env,
            "METAFLOW_USER": "dev",
            "METAFLOW_HOME": str(flow_repo.parent),
            "METAFLOW_CLIENT_CACHE_PATH": str(flow_repo.parent / "client_cache"),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert client.returncode == 0 and client.stdout.split("\n")[-2] == "1 [0, 1]", client.stdout + client.stderr

    # Coverage of step code: the line that only a task process runs was measured.
    lines = FLOW.splitlines()
    ran = lines.index("        self.total = sum(self.squares)  # runs in a task process only") + 1
    missed = lines.index("            self.big = True  # never runs: coverage must report this line missed") + 1
    cov = ET.parse(flow_repo / "build" / "coverage.xml").getroot()
    (cls,) = [c for c in cov.iter("class") if c.get("filename", "").endswith("hello_flow.py")]
    hits = {int(line.get("number", 0)): int(line.get("hits", 0)) for line in cls.iter("line")}
    assert hits[ran] > 0, hits
    assert hits[missed] == 0, hits
