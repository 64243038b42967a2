"""Hermetic stores: per test, parallel safe, no USER needed, nothing left behind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import FLOWS

TWO_TESTS = """
    from metaflow import Flow, get_metadata, namespace

    def test_a(runner):
        result = runner("hello.py").run(alpha=1)
        runs = list(Flow("HelloFlow"))
        assert [r.pathspec for r in runs] == [result.run.pathspec]
        assert get_metadata().startswith("local@")

    def test_b(runner):
        result = runner("hello.py").run(alpha=2)
        runs = list(Flow("HelloFlow"))
        assert [r.pathspec for r in runs] == [result.run.pathspec]
        assert Flow("HelloFlow").latest_run.data.x == 3
"""


@pytest.mark.parametrize("args", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_each_test_sees_only_its_own_runs(flow_pytester: pytest.Pytester, args: list) -> None:
    flow_pytester.makepyfile(TWO_TESTS)
    result = flow_pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=2)
    assert not list(flow_pytester.path.rglob(".metaflow"))


def test_shared_run_stays_readable_after_other_stores(flow_pytester: pytest.Pytester) -> None:
    flow_pytester.makepyfile(
        """
        import pytest
        from metaflow import Flow

        @pytest.fixture(scope="module")
        def shared(runner_factory):
            return runner_factory("hello.py").run(alpha=10)

        def test_first(shared):
            assert shared.run.data.x == 11

        def test_other_store_in_between(runner, shared):
            own = runner("foreach.py").run()
            assert own.run.data.total == 14
            # the shared run, made in the session store, is still readable ...
            assert shared.run.data.x == 11
            assert shared.run["start"].task.stdout.startswith("hello from start")
            # ... while listings show only this test's store
            assert [r.pathspec for r in Flow("ForeachFlow")] == [own.run.pathspec]

        def test_after(shared):
            assert shared.run["end"].task.data.x == 11
            assert shared.run.successful
        """
    )
    result = flow_pytester.runpytest_subprocess()
    result.assert_outcomes(passed=3)


@pytest.mark.parametrize("user", [None, "root"], ids=["no-user", "root"])
def test_runs_without_a_usable_user(flow_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, user: Any) -> None:
    if user:
        monkeypatch.setenv("USER", user)
    flow_pytester.makepyfile(
        """
        from pytest_metaflow import assert_run_succeeded

        def test_it(runner):
            result = runner("hello.py").run()
            assert_run_succeeded(result)
            assert "user:pytest" in result.run.tags
        """
    )
    flow_pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_an_existing_user_is_kept(flow_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "alice")
    flow_pytester.makepyfile(
        """
        def test_it(runner):
            assert "user:alice" in runner("hello.py").run().run.tags
        """
    )
    flow_pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_user_config_does_not_leak_in(
    flow_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A developer profile pointing at S3 and a metadata service must not be used.
    home = tmp_path / "mfhome"
    home.mkdir()
    config = {
        "METAFLOW_DEFAULT_DATASTORE": "s3",
        "METAFLOW_DATASTORE_SYSROOT_S3": "s3://nowhere/x",
        "METAFLOW_DEFAULT_METADATA": "service",
        "METAFLOW_SERVICE_URL": "http://127.0.0.1:9/",
    }
    (home / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("METAFLOW_HOME", str(home))
    flow_pytester.makepyfile(
        """
        from pytest_metaflow import assert_run_succeeded

        def test_it(runner):
            result = runner("hello.py").run()
            assert_run_succeeded(result)
            assert result.run.data.x == 2
        """
    )
    flow_pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_client_state_and_sigint_handler_are_restored(flow_pytester: pytest.Pytester) -> None:
    flow_pytester.makepyfile(
        """
        import signal
        import metaflow
        from metaflow.client import core

        BEFORE = {}

        def test_capture():
            BEFORE["sigint"] = signal.getsignal(signal.SIGINT)
            BEFORE["md"] = core.current_metadata
            BEFORE["ns"] = core.current_namespace

        def test_use(runner):
            runner("hello.py").run()
            assert signal.getsignal(signal.SIGINT) is BEFORE["sigint"]
            assert metaflow.get_namespace() is None

        def test_after():
            assert core.current_metadata is BEFORE["md"]
            assert core.current_namespace is BEFORE["ns"]
            assert signal.getsignal(signal.SIGINT) is BEFORE["sigint"]
        """
    )
    flow_pytester.runpytest_subprocess().assert_outcomes(passed=3)


def test_store_and_client_cache_live_in_the_test_temp_area(runner: Any, metaflow_store: Any) -> None:
    from metaflow.client import core

    result = runner(FLOWS / "hello.py").run()
    assert result.run.data.x == 2
    assert Path(core.filecache._cache_dir).is_relative_to(metaflow_store.path)
    assert list((metaflow_store.path / ".metaflow" / "HelloFlow").iterdir())
    assert result.command_obj.log_files["stdout"].startswith(str(metaflow_store.path))


def test_flow_file_rewritten_at_the_same_path_is_reloaded(runner: Any, tmp_path: Path) -> None:
    flow = tmp_path / "hello.py"
    source = (FLOWS / "hello.py").read_text()
    flow.write_text(source)
    assert runner(flow).run().run.data.x == 2
    flow.write_text(source.replace("self.alpha + 1", "self.alpha + 100"))
    assert runner(flow).run().run.data.x == 101


def test_store_is_removed_after_the_test(flow_pytester: pytest.Pytester) -> None:
    flow_pytester.makepyfile(
        """
        STORES = []

        def test_run(runner, metaflow_store):
            STORES.append(metaflow_store.path)
            runner("hello.py").run()
            assert STORES[0].exists()

        def test_gone():
            assert not STORES[0].exists()
        """
    )
    flow_pytester.runpytest_subprocess().assert_outcomes(passed=2)


def test_resume_of_a_run_from_runner_factory(flow_pytester: pytest.Pytester) -> None:
    """``runner.resume(origin_run_id=...)`` of a session-store run works, and leaves that store alone (issue 10.14)."""
    flow_pytester.makepyfile(
        """
        import os
        import pytest
        from metaflow import Flow
        from pytest_metaflow import assert_run_failed, assert_run_succeeded, assert_artifacts

        @pytest.fixture(scope="module")
        def failed(runner_factory, tmp_path_factory):
            marker = tmp_path_factory.mktemp("marker") / "ok"
            result = runner_factory("resumable.py", env={"RESUME_MARKER": str(marker)}).run()
            return result, marker

        def test_resume_in_own_store(runner, failed):
            origin, marker = failed
            assert_run_failed(origin, step="flaky")
            marker.write_text("")
            resumed = runner("resumable.py", env={"RESUME_MARKER": str(marker)}).resume(
                origin_run_id=origin.run.id
            )
            assert_run_succeeded(resumed)
            assert_artifacts(resumed, y=2)
            assert resumed.run["start"].task.origin_pathspec == origin.run["start"].task.pathspec
            assert Flow("ResumableFlow").latest_run.pathspec == resumed.run.pathspec

        def test_session_store_untouched(runner_factory, failed):
            origin, _ = failed
            # only the origin run lives in the session store; it stays readable and failed
            assert [r.id for r in Flow("ResumableFlow")] == [origin.run.id]
            assert not origin.run.successful
        """
    )
    result = flow_pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_every_metaflow_write_location_is_in_the_store(flow_pytester: pytest.Pytester) -> None:
    """Issue 10.4: the places docs/reliability.md lists point into the test's store, seen from a task."""
    flow_pytester.makepyfile(
        """
        import os

        def test_where(runner, metaflow_store):
            result = runner("where.py").run()
            data = result.run["start"].task.data
            store = os.path.realpath(metaflow_store.path)
            inside = lambda v: bool(v) and (os.path.realpath(v) + os.sep).startswith(store + os.sep)
            outside = {k: v for k, v in data.places.items() if not inside(v)}
            assert not outside, outside
            assert data.stdin_is_devnull and data.extension_on_path
            # micromamba (for @conda/@pypi) stays the user's, shared by all tests
            assert data.micromamba_home == os.path.expanduser(os.environ.get("METAFLOW_HOME", "~/.metaflowconfig"))
        """
    )
    result = flow_pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert sorted(p.name for p in flow_pytester.path.iterdir() if p.name.startswith((".metaflow", "metaflow."))) == []
