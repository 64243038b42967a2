"""Every behaviour of Metaflow's Runner keeps working through the fixtures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import metaflow
import pytest

from pytest_metaflow import assert_artifacts, assert_run_failed, assert_run_succeeded

from .conftest import FLOWS


def test_runner_is_a_metaflow_runner(runner: Any) -> None:
    r = runner(FLOWS / "hello.py")
    assert isinstance(r, metaflow.Runner)


def test_run_status_returncode_and_logs(runner: Any) -> None:
    result = runner(FLOWS / "hello.py").run(alpha=5)
    assert (result.status, result.returncode) == ("successful", 0)
    assert "hello from start" in result.stdout
    assert "Workflow starting" in result.stdout or "Workflow starting" in result.stderr
    assert result.run.data.x == 6


def test_logs_stay_readable_after_cleanup(runner: Any) -> None:
    r = runner(FLOWS / "hello.py")
    result = r.run()
    before = result.stdout
    r.cleanup()
    assert result.stdout == before and "hello from start" in before
    assert isinstance(result.stderr, str)


def test_runner_and_executing_run_as_context_managers(runner: Any) -> None:
    with runner(FLOWS / "hello.py") as r:
        result = r.run(alpha=2)
    assert result.run.data.x == 3 and "hello from start" in result.stdout
    with runner(FLOWS / "hello.py").run(alpha=7) as result:
        assert result.run.data.x == 8
    assert "hello from start" in result.stdout


def test_resume_after_failure(runner: Any, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    r = runner(FLOWS / "resumable.py", env={"RESUME_MARKER": str(marker)})
    first = r.run()
    assert_run_failed(first, step="flaky", match="marker missing")
    marker.touch()
    resumed = r.resume()
    assert_run_succeeded(resumed)
    assert resumed.run.pathspec != first.run.pathspec
    assert_artifacts(resumed, y=2)


@pytest.mark.asyncio
async def test_async_run_wait_and_stream_log(runner: Any) -> None:
    r = runner(FLOWS / "hello.py")
    running = await r.async_run(alpha=4)
    assert running.status in ("running", "successful")
    lines = [line async for _, line in running.stream_log("stdout")]
    assert any("hello from start" in line for line in lines)
    await running.wait(timeout=120, stream="stdout")
    assert running.status == "successful" and running.returncode == 0
    assert running.run.data.x == 5
    # stream_log from a position resumes after it
    positions = [pos async for pos, _ in running.stream_log("stdout")]
    rest = [line async for _, line in running.stream_log("stdout", position=positions[0])]
    assert len(rest) == len(positions) - 1


@pytest.mark.asyncio
async def test_async_resume_and_async_context_manager(runner: Any, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    async with runner(FLOWS / "resumable.py", env={"RESUME_MARKER": str(marker)}) as r:
        first = await r.async_run()
        await first.wait()
        assert first.status == "failed"
        marker.touch()
        resumed = await r.async_resume()
        await resumed.wait()
        assert resumed.status == "successful"
        assert resumed.run.data.y == 2


@pytest.mark.asyncio
async def test_wait_timeout_kills_the_run(runner: Any) -> None:
    running = await runner(FLOWS / "slow.py").async_run(seconds=60)
    await running.wait(timeout=1)
    assert running.status == "timeout"


def test_show_output_echoes_to_stdout(runner: Any, capfd: pytest.CaptureFixture[str]) -> None:
    runner(FLOWS / "hello.py", show_output=True).run()
    assert "hello from start" in capfd.readouterr().out


def test_output_is_kept_quiet_by_default(runner: Any, capfd: pytest.CaptureFixture[str]) -> None:
    runner(FLOWS / "hello.py").run()
    assert "hello from start" not in capfd.readouterr().out


def test_cwd_and_env_reach_the_run(runner: Any, tmp_path: Path) -> None:
    result = runner(FLOWS / "resumable.py", cwd=str(tmp_path), env={"RESUME_MARKER": "here"})
    (tmp_path / "here").touch()  # relative to the run's cwd
    assert_run_succeeded(result.run())
    assert os.getcwd() != str(tmp_path)
