"""Hermetic S3: the session's local S3 server and a bucket per test, on real runs.

Every inner pytest runs in a real subprocess against a real moto server on
127.0.0.1 (nothing is mocked); the S3 tests of CI run in a private network
namespace on top (``.ci/run``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_metaflow import _s3server

FLOW = """
import os
from metaflow import FlowSpec, Parameter, S3, step


class S3StepsFlow(FlowSpec):
    src = Parameter("src", required=True)

    @step
    def start(self):
        with S3() as s3:
            self.text = s3.get(self.src).text
            self.tmproot = os.path.dirname(s3._tmpdir)
        self.next(self.write)

    @step
    def write(self):
        import boto3

        bucket = self.src[len("s3://"):].split("/", 1)[0]
        boto3.client("s3").put_object(Bucket=bucket, Key="out/boto3.txt", Body=self.text.upper().encode())
        with S3(run=self) as s3:
            self.url = s3.put("result.txt", self.text[::-1])
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    S3StepsFlow()
"""


@pytest.fixture
def s3_pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(s3_steps_flow=FLOW)
    return pytester


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not _s3server._alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_step_code_uses_metaflow_s3_and_boto3_unchanged(s3_pytester: pytest.Pytester) -> None:
    s3_pytester.makepyfile(
        test_it="""
        import os
        from pathlib import Path

        from pytest_metaflow import assert_artifacts, assert_run_succeeded


        def test_flow(runner, metaflow_s3, metaflow_store, tmp_path):
            src = metaflow_s3.put("in/text.txt", "hello s3")
            local = tmp_path / "seed.bin"
            local.write_bytes(b"\\x00\\x01")
            assert metaflow_s3.put("in/seed.bin", local) == metaflow_s3.url("in/seed.bin")
            assert metaflow_s3.keys("in/") == ["in/seed.bin", "in/text.txt"]

            result = runner("s3_steps_flow.py").run(src=src)

            assert_run_succeeded(result)
            assert_artifacts(result, step="start", text="hello s3", tmproot=str(metaflow_store.tmp))
            assert metaflow_s3.get("out/boto3.txt") == b"HELLO S3"
            # S3(run=self) in the step and S3(run=...) in the test body meet.
            from metaflow import S3

            with S3(run=result.run) as s3:
                assert s3.get("result.txt").text == "3s olleh"
                assert str(metaflow_store.tmp) in s3._tmpdir
            assert result.run["end"].task.data.url.startswith(metaflow_s3.datatools_root + "/S3StepsFlow/")
            # A fresh boto3 client in the test body reaches the same bucket.
            import boto3

            assert boto3.client("s3").get_object(Bucket=metaflow_s3.bucket, Key="out/boto3.txt")["Body"].read() == b"HELLO S3"
            Path(os.environ["RESULT_FILE"]).write_text(metaflow_s3.bucket)


        def test_bucket_of_the_previous_test_is_gone(metaflow_s3):
            import os
            from pathlib import Path

            previous = Path(os.environ["RESULT_FILE"]).read_text()
            names = [b["Name"] for b in metaflow_s3.client.list_buckets()["Buckets"]]
            assert previous not in names
            assert metaflow_s3.bucket in names
            assert metaflow_s3.keys() == []
        """
    )
    result_file = s3_pytester.path / "bucket.txt"
    env = {"RESULT_FILE": str(result_file), "AWS_PROFILE": "no-such-profile", "AWS_ACCESS_KEY_ID": "AKIAREALLOOKING"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)  # a developer's AWS setup must not leak into the runs
        result = s3_pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2)
    # metaflow.S3 made its temp dirs in the store, none in the cwd.
    assert not list(s3_pytester.path.rglob("metaflow.s3.*"))


def test_server_is_shared_by_xdist_workers_and_stopped_at_the_end(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_it="""
        import os, json, pytest
        from pathlib import Path

        @pytest.mark.parametrize("n", range(4))
        def test_record(s3_server, metaflow_s3, n):
            out = Path(os.environ["OUT_DIR"]) / f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-{n}.json"
            out.write_text(json.dumps({"pid": s3_server.pid, "endpoint": s3_server.endpoint}))
        """
    )
    out = pytester.path / "out"
    out.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OUT_DIR", str(out))
        result = pytester.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=4)
    records = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert {p.name.split("-")[0] for p in out.glob("*.json")} == {"gw0", "gw1"}
    assert len({(r["pid"], r["endpoint"]) for r in records}) == 1
    assert records[0]["endpoint"].startswith("http://127.0.0.1:")
    assert _gone(records[0]["pid"], within=10), "the S3 server outlived the session"


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_server_goes_when_pytest_is_killed(pytester: pytest.Pytester, xdist: bool) -> None:
    pytester.makepyfile(
        test_it="""
        import os, time
        from pathlib import Path

        def test_hang(s3_server):
            Path(os.environ["PID_FILE"]).write_text(str(s3_server.pid))
            time.sleep(120)
        """
    )
    pid_file = pytester.path / "server.pid"
    env = {**os.environ, "PID_FILE": str(pid_file)}
    args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--basetemp={pytester.path / 'bt'}"]
    proc = subprocess.Popen(
        args + (["-n", "2"] if xdist else []),
        cwd=pytester.path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not pid_file.exists() or not pid_file.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, "the inner pytest never started the server"
            time.sleep(0.1)
        server = int(pid_file.read_text())
        assert _s3server._alive(server)
        proc.send_signal(signal.SIGKILL)  # the controller: no teardown, no sessionfinish
        proc.wait()
        assert _gone(server, within=10), "the S3 server outlived a SIGKILLed pytest"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        # xdist workers notice their controller's death on their own; make sure here.
        os.killpg(proc.pid, signal.SIGKILL) if _group_alive(proc.pid) else None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except OSError:
        return False


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


def test_dead_endpoint_fails_a_run_quickly_with_a_clear_message(s3_pytester: pytest.Pytester) -> None:
    s3_pytester.makepyfile(
        test_it=f"""
        import time
        from pytest_metaflow import assert_run_failed

        def test_dead(runner, metaflow_s3):
            src = metaflow_s3.put("in/text.txt", "x")
            dead = "http://127.0.0.1:{_dead_port()}"
            start = time.monotonic()
            result = runner("s3_steps_flow.py", env={{"METAFLOW_S3_ENDPOINT_URL": dead}}).run(src=src)
            print("DEAD-ENDPOINT-SECONDS", round(time.monotonic() - start, 1))
            assert_run_failed(result, step="start", match="Could not connect to the endpoint URL")
        """
    )
    result = s3_pytester.runpytest_subprocess("-s")
    result.assert_outcomes(passed=1)
    seconds = float(next(line for line in result.outlines if "DEAD-ENDPOINT-SECONDS" in line).split()[-1])
    # Not a timing threshold on this loaded machine, only "not Metaflow's minutes of retries".
    assert seconds < 120, seconds


def test_endpoint_must_be_local_and_alive(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_it="""
        def test_it(metaflow_s3):
            pass
        """
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTEST_METAFLOW_S3_ENDPOINT", "http://s3.amazonaws.com:80")
        result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*S3EndpointError*PYTEST_METAFLOW_S3_ENDPOINT*loopback*s3.amazonaws.com*nothing was sent*"]
    )

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTEST_METAFLOW_S3_ENDPOINT", f"http://127.0.0.1:{_dead_port()}")
        start = time.monotonic()
        result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*S3EndpointError: the local S3 server at http://127.0.0.1:* does not answer*"])
    result.stdout.no_fnmatch_line("*Traceback*")
    assert time.monotonic() - start < 120


def test_plugin_does_not_import_boto3_or_moto(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_it="""
        import sys

        def test_it():
            assert not [m for m in ("boto3", "botocore", "moto", "metaflow") if m in sys.modules]
        """
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_check_local_accepts_loopback_only() -> None:
    from pytest_metaflow._s3 import check_local
    from pytest_metaflow.errors import S3EndpointError

    assert check_local("http://127.0.0.1:9000/", "x") == "http://127.0.0.1:9000"
    assert check_local("http://localhost:9000", "x") == "http://localhost:9000"
    assert check_local("http://[::1]:9000", "x") == "http://[::1]:9000"
    for bad in (
        "http://10.0.0.1:9000",
        "https://s3.amazonaws.com",
        "http://127.0.0.1",
        "ftp://127.0.0.1:21",
        "s3.local:9000",
    ):
        with pytest.raises(S3EndpointError, match="loopback"):
            check_local(bad, "x")


STORE_MODE_TESTS = """
import json, os
from pathlib import Path

import pytest
from metaflow import Flow
from metaflow.exception import MetaflowNotFound

from pytest_metaflow import assert_artifacts, assert_run_succeeded

ROOTS = Path(os.environ["ROOTS_FILE"])


def remember(name, store):
    with ROOTS.open("a") as f:
        f.write(json.dumps([name, store.s3_root]) + "\\n")


@pytest.fixture(scope="module")
def shared(runner_factory):
    remember("session", runner_factory.store)
    return runner_factory("s3_steps_flow.py").run(src="s3://pytest-metaflow-store/seed.txt")


def test_a_run_resume_spin(runner, metaflow_store, metaflow_s3):
    remember("a", metaflow_store)
    src = metaflow_s3.put("in.txt", "abc")
    r = runner("s3_steps_flow.py")
    result = r.run(src=src)
    assert_run_succeeded(result)
    meta = result.run["start"].task.metadata_dict
    assert (meta["ds-type"], meta["ds-root"]) == ("s3", metaflow_store.s3_root)
    assert Flow("S3StepsFlow").latest_run.pathspec == result.run.pathspec
    assert not list((Path(metaflow_store.path) / ".metaflow" / "S3StepsFlow").glob("*/*/*/0.data.json"))
    assert_run_succeeded(r.resume())
    spun = r.spin(result.run["write"].task.pathspec, persist=True)
    assert spun.task["url"].data.startswith(metaflow_s3.datatools_root)


def test_b_shared_run_from_the_session_store(shared, runner):
    assert_artifacts(shared, step="start", text="seed")
    with pytest.raises(MetaflowNotFound):
        Flow("S3StepsFlow")  # this test's own store has no run


def test_c_failed_and_kept(runner, metaflow_store, metaflow_s3):
    remember("kept", metaflow_store)
    runner("s3_steps_flow.py").run(src=metaflow_s3.put("x.txt", "x"))
    assert False, "fails on purpose: its prefix is kept"
"""

STORE_MODE_CONFTEST = """
import pytest

@pytest.fixture(scope="session", autouse=True)
def seed(request):
    if request.config.getoption("metaflow_datastore") == "s3-local":
        s3 = request.getfixturevalue("s3_server")
        from pytest_metaflow._s3 import boto3_client
        client = boto3_client(s3.endpoint)
        try:
            client.create_bucket(Bucket="pytest-metaflow-store")
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        client.put_object(Bucket="pytest-metaflow-store", Key="seed.txt", Body=b"seed")
    yield
    if request.config.getoption("metaflow_datastore") == "s3-local":
        import json, os
        from pathlib import Path
        # Prefixes of passed tests and of the session store are gone, the failed test's is kept.
        roots = dict(json.loads(l) for l in Path(os.environ["ROOTS_FILE"]).read_text().splitlines())
        left = {}
        for name, root in roots.items():
            prefix = root[len("s3://pytest-metaflow-store/"):] + "/"
            listed = client.list_objects_v2(Bucket="pytest-metaflow-store", Prefix=prefix)
            left[name] = listed.get("KeyCount", 0)
        Path(os.environ["ROOTS_FILE"] + ".left").write_text(json.dumps(left))
"""


def test_s3_local_store_mode(s3_pytester: pytest.Pytester) -> None:
    s3_pytester.makepyfile(test_store_mode=STORE_MODE_TESTS)
    s3_pytester.makeconftest(STORE_MODE_CONFTEST)
    roots = s3_pytester.path / "roots.jsonl"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROOTS_FILE", str(roots))
        result = s3_pytester.runpytest_subprocess(
            "--metaflow-datastore=s3-local", "--metaflow-keep=failed", "-p", "no:randomly"
        )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*datastore on S3 (the session's local S3 server), prefix per test, metadata local*"])
    left = json.loads((s3_pytester.path / "roots.jsonl.left").read_text())
    assert left["a"] == 0 and left["session"] == 0, left
    assert left["kept"] > 0, left
    assert not list(s3_pytester.path.rglob("metaflow.s3.*"))


def test_datastore_option_is_validated(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_it="def test_it(): pass")
    result = pytester.runpytest_subprocess("--metaflow-datastore=gs://bucket")
    result.stderr.fnmatch_lines(["*--metaflow-datastore: expected local, s3-local or s3://BUCKET*, got 'gs://bucket'*"])
    pytester.makeini("[pytest]\nmetaflow_datastore = s3-local\n")
    result = pytester.runpytest_subprocess("--metaflow-use-config")
    result.stderr.fnmatch_lines(
        ["*ini option metaflow_datastore=s3-local and --metaflow-use-config exclude each other*"]
    )


def test_real_bucket_mode_overrides_only_the_datastore(tmp_path: Path) -> None:
    from pytest_metaflow import _s3store
    from pytest_metaflow._store import Store

    store = Store(tmp_path / "store")
    s3 = _s3store.S3Store("s3://team-bucket/ci", "sess", "test_x-1", store, server=None)
    assert s3.root == "s3://team-bucket/ci/sess/test_x-1"
    assert s3.env == {
        "METAFLOW_DEFAULT_DATASTORE": "s3",
        "METAFLOW_DATASTORE_SYSROOT_S3": s3.root,
        "METAFLOW_DATATOOLS_S3ROOT": s3.root + "/data",
        "METAFLOW_TEMPDIR": str(store.tmp),
        "METAFLOW_ARTIFACT_LOCALROOT": str(store.tmp),
    }
    # No endpoint, no credentials: the team's AWS setup supplies them.
    assert not [k for k in s3.env if k.startswith("AWS_") or "ENDPOINT" in k]


def test_with_adds_a_decorator_to_every_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        env_flow="""
        import os
        from metaflow import FlowSpec, step

        class EnvFlow(FlowSpec):
            @step
            def start(self):
                self.seen = os.environ.get("PMF_WITH", "unset")
                self.next(self.end)

            @step
            def end(self):
                pass

        if __name__ == "__main__":
            EnvFlow()
        """,
        test_it="""
        import pytest

        @pytest.fixture(scope="module")
        def shared(runner_factory):
            return runner_factory("env_flow.py").run()

        def test_both(runner, shared):
            assert runner("env_flow.py").run().run.data.seen == "on"
            assert shared.run.data.seen == "on"
        """,
    )
    result = pytester.runpytest_subprocess('--metaflow-with=environment:vars={"PMF_WITH":"on"}')
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(['*metaflow: every run --with environment:vars={"PMF_WITH":"on"}*'])
    result = pytester.runpytest_subprocess("--metaflow-with=retry: times=1")
    result.stderr.fnmatch_lines(["*--metaflow-with: a decorator spec has no spaces*"])


NOTEBOOK_CELL = """\
from metaflow import FlowSpec, NBRunner, step


class SquareFlow(FlowSpec):
    @step
    def start(self):
        self.square = 49
        self.next(self.end)

    @step
    def end(self):
        pass


run = NBRunner(SquareFlow, pylint=False).nbrun()
meta = run["start"].task.metadata_dict
print(run.pathspec, run.data.square, meta["ds-type"], meta["ds-root"])"""

NOTEBOOK_TESTS = """
from metaflow import Flow, FlowSpec, step

from pytest_metaflow import assert_artifacts


class CubeFlow(FlowSpec):
    @step
    def start(self):
        self.cube = 27
        self.next(self.end)

    @step
    def end(self):
        pass


def test_run_notebook(run_notebook, metaflow_store):
    nb = run_notebook("square.ipynb")
    run = Flow("SquareFlow").latest_run
    assert run.data.square == 49  # read from S3 by the test body
    printed = nb.cells[0].outputs[-1].text.split()
    assert printed == [run.pathspec, "49", "s3", metaflow_store.s3_root], printed


def test_run_notebook_with_metaflow_s3(run_notebook, metaflow_store, metaflow_s3):
    url = metaflow_s3.put("in.txt", "from the test")
    nb = run_notebook("reads_s3.ipynb", env={"IN_URL": url})
    assert nb.cells[0].outputs[-1].text.strip() == "from the test"


def test_nbrunner(nbrunner, metaflow_store):
    run = nbrunner(CubeFlow).nbrun()
    assert_artifacts(run, step="start", cube=27)
    meta = run["start"].task.metadata_dict
    assert (meta["ds-type"], meta["ds-root"]) == ("s3", metaflow_store.s3_root)
"""

NOTEBOOK_CONFTEST = """
import json, os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def count_left(s3_server):
    yield
    from pytest_metaflow._s3 import boto3_client

    client = boto3_client(s3_server.endpoint)
    listed = client.list_objects_v2(Bucket="pytest-metaflow-store")
    Path("left.json").write_text(json.dumps(listed.get("KeyCount", 0)))
"""


def test_notebooks_and_nbrunner_in_s3_store_mode(pytester: pytest.Pytester) -> None:
    """Every notebook run kind on the S3 store: NBRunner in a real kernel, ``nbrunner``; nothing left after."""
    pytest.importorskip("nbclient", reason="needs the extra pytest-metaflow[notebook]")
    pytest.importorskip("ipykernel", reason="needs the extra pytest-metaflow[notebook]")
    import nbformat

    for name, cells in {
        "square.ipynb": [NOTEBOOK_CELL],
        "reads_s3.ipynb": [
            "import os\nfrom metaflow import S3\nwith S3() as s3:\n    print(s3.get(os.environ['IN_URL']).text)"
        ],
    }.items():
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
        nbformat.write(nb, str(pytester.path / name))
    pytester.makepyfile(test_nb=NOTEBOOK_TESTS)
    pytester.makeconftest(NOTEBOOK_CONFTEST)
    result = pytester.runpytest_subprocess("--metaflow-datastore=s3-local", "-p", "no:randomly")
    result.assert_outcomes(passed=3)
    assert json.loads((pytester.path / "left.json").read_text()) == 0
    assert not list(pytester.path.rglob("metaflow.s3.*"))


# --- remote jobs: @kubernetes against a fake Kubernetes API on 127.0.0.1 ---------------

K8S_FLOW = """
from metaflow import FlowSpec, step


class RemoteFlow(FlowSpec):
    @step
    def start(self):  # submitted as a Kubernetes job (--metaflow-with=kubernetes), which stays pending
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    RemoteFlow()
"""

K8S_TESTS = '''
import json
import os
import threading
import time
import urllib.request

import pytest

from pytest_metaflow import RunTimeoutError


def wait_for_job(thread):
    """Until the fake API has a job (the run's start step is on the 'cluster')."""
    url = os.environ["FAKE_KUBE"] + "/api/v1/namespaces/default/pods"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and thread.is_alive():
        with urllib.request.urlopen(url) as response:
            if json.load(response)["items"]:
                return
        time.sleep(0.5)
    raise AssertionError("no job was submitted")


def test_teardown(runner):
    r = runner("remote_flow.py")

    def run():
        try:
            r.run()
        except Exception:
            pass  # the run's processes are killed at teardown

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_for_job(thread)  # the test ends while the job runs: teardown must stop it


@pytest.mark.metaflow(timeout=REMOTE_TIMEOUT)
def test_timeout(runner):
    with pytest.raises(RunTimeoutError):
        runner("remote_flow.py").run()
'''


@pytest.mark.parametrize("which", ["teardown", "timeout"])
def test_remote_jobs_are_labelled_and_killed(pytester: pytest.Pytester, which: str) -> None:
    """``--metaflow-with=kubernetes`` on the S3 store: the job carries the session and the test,
    and Metaflow's ``kubernetes kill`` stops it when the plugin kills the run (teardown, timeout).

    The job never runs (no cluster): its pod stays pending, as a step on a busy cluster does.
    """
    pytest.importorskip("kubernetes", reason="@kubernetes needs the kubernetes package (test extra)")
    from .fake_kube import FakeKube

    # The run timeout of the timeout case: long enough for the job to be submitted on a
    # loaded machine (≈5-15 s here).
    timeout = 120
    pytester.makepyfile(remote_flow=K8S_FLOW, test_remote=K8S_TESTS.replace("REMOTE_TIMEOUT", str(timeout)))
    with FakeKube() as kube, pytest.MonkeyPatch.context() as mp:
        mp.setenv("KUBECONFIG", str(kube.kubeconfig(pytester.path / "kubeconfig")))
        mp.setenv("METAFLOW_KUBERNETES_NAMESPACE", "default")
        mp.setenv("METAFLOW_KUBERNETES_LABELS", "team=ml")  # the team's own label stays
        mp.setenv("FAKE_KUBE", kube.url)
        result = pytester.runpytest_subprocess(
            "--metaflow-datastore=s3-local",
            "--metaflow-remote=keep",
            "--metaflow-with=kubernetes",
            "-k",
            f"test_{which}",
            timeout=timeout + 300,
        )
        result.assert_outcomes(passed=1)
        assert len(kube.jobs) == 1, kube.requests
        ((name, job),) = kube.jobs.items()
        labels = job["metadata"]["labels"]
        assert labels["team"] == "ml"
        assert labels["pytest-metaflow/test"] == f"test_remote.py-test_{which}", labels
        assert len(labels["pytest-metaflow/session"]) == 12, labels
        annotations = job["metadata"]["annotations"]
        assert annotations["metaflow/flow_name"] == "RemoteFlow", annotations
        # Killed by Metaflow's own `kubernetes kill --run-id`: exec refused, then parallelism 0.
        assert kube.patches.get(name) == [{"spec": {"parallelism": 0}}], (kube.patches, kube.requests)
        assert ("GET", f"/api/v1/namespaces/default/pods/{name}-pod/exec") in kube.requests


def test_remote_labels_keep_the_teams_and_fit_kubernetes_rules() -> None:
    from pytest_metaflow import _remote

    env = _remote.labels_env(
        "abc123",
        "tests/test_x.py::test_y[" + "p" * 80 + "]",
        {"METAFLOW_KUBERNETES_LABELS": "team=ml", "METAFLOW_BATCH_DEFAULT_TAGS": '{"cost": "ci"}'},
    )
    labels = dict(kv.split("=", 1) for kv in env["METAFLOW_KUBERNETES_LABELS"].split(","))
    assert labels["team"] == "ml" and labels["pytest-metaflow/session"] == "abc123"
    test = labels["pytest-metaflow/test"]
    assert len(test) <= 63 and test.endswith("p") and test[0].isalnum(), test
    # Metaflow's own check of label values accepts it.
    from metaflow.plugins.kubernetes.kube_utils import validate_kube_labels

    assert validate_kube_labels(labels)
    tags = json.loads(env["METAFLOW_BATCH_DEFAULT_TAGS"])
    assert tags == {
        "cost": "ci",
        "pytest-metaflow-session": "abc123",
        "pytest-metaflow-test": "tests/test_x.py::test_y[" + "p" * 80 + "]",
    }
    assert (
        _remote.labels_env("s", "t", {})["METAFLOW_KUBERNETES_LABELS"]
        == "pytest-metaflow/session=s,pytest-metaflow/test=t"
    )


def test_remote_tasks_are_read_from_the_processes_to_kill() -> None:
    """The local processes of remote tasks (``<flow> ... kubernetes step``/``batch step``) name their runs."""
    from pytest_metaflow import _processes, _remote

    token = _processes.new_token()
    procs = []
    try:
        for kind, run_id in (("kubernetes", "111"), ("batch", "222"), ("kubernetes", "111")):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", "import time; time.sleep(60)", "flow.py", kind, "step", "start"],
                    env={**os.environ, _processes.TOKEN_VAR: f"{token}/1", "METAFLOW_RUN_ID": run_id},
                )
            )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", "import time; time.sleep(60)", "step"],
                env={**os.environ, _processes.TOKEN_VAR: token, "METAFLOW_RUN_ID": "333"},
            )
        )
        deadline = time.monotonic() + 30
        while len(_processes.find_processes([token])) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _remote.remote_tasks(token) == [("batch", "222"), ("kubernetes", "111")]
        assert _remote.remote_tasks(_processes.new_token()) == []
        assert _remote.kill_command("f.py", "batch", "222") == [
            sys.executable,
            "f.py",
            "--quiet",
            "batch",
            "kill",
            "--run-id",
            "222",
        ]
    finally:
        for p in procs:
            p.kill()
            p.wait()
