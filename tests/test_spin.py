"""``spin(pathspec, artifacts={...})`` on the fixtures' Runner, on real runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_metaflow import _spin


def test_spin_with_plain_values_and_helpers(flow_pytester: pytest.Pytester) -> None:
    flow_pytester.makepyfile(
        """
        from metaflow import Task
        from pytest_metaflow import assert_artifacts, assert_log_contains, assert_log_not_contains

        def test_score(runner, metaflow_store):
            r = runner("scoring.py")
            base = r.run(alpha=1)
            spun = r.spin(base.run["score"].task.pathspec, artifacts={"values": [10, 20]}, persist=True)
            assert spun.status == "successful"
            assert spun.task["total"].data == 30.0
            assert isinstance(spun.task, Task)
            for result in (spun, spun.task):
                assert_artifacts(result, total=30.0)
                assert_log_contains(result, "total is 30.0")
                assert_log_not_contains(result, "total is 3.0")
            assert base.run["score"].task["total"].data == 3.0  # the original run is untouched
            assert not list(metaflow_store.tmp.glob("spin_artifacts_*")), "artifacts module left behind"

        def test_not_persisted_by_default(runner):
            r = runner("scoring.py")
            base = r.run()
            spun = r.spin(base.run["score"].task.pathspec, artifacts={"values": [5]})
            assert_log_contains(spun, "total is 5.0")
            assert "total" not in [a.id for a in spun.task]
        """
    )
    result = flow_pytester.runpytest_subprocess()
    result.assert_outcomes(passed=2)


def test_spin_a_shared_run_from_a_test_runner(flow_pytester: pytest.Pytester) -> None:
    flow_pytester.makepyfile(
        """
        import pytest
        from pytest_metaflow import assert_artifacts

        @pytest.fixture(scope="module")
        def base(runner_factory):
            return runner_factory("scoring.py").run(alpha=1)

        @pytest.mark.parametrize("values, total", [([1, 2], 3.0), ([10, 20], 30.0)])
        def test_score(runner, base, values, total):
            spun = runner("scoring.py").spin(base.run["score"].task.pathspec, artifacts={"values": values}, persist=True)
            assert_artifacts(spun, total=total)
            assert base.run["score"].task["total"].data == 3.0
        """
    )
    flow_pytester.runpytest_subprocess().assert_outcomes(passed=2)


def test_spin_values_that_are_not_literals(flow_pytester: pytest.Pytester) -> None:
    flow_pytester.makepyfile(
        """
        import math
        from fractions import Fraction
        from pytest_metaflow import assert_artifacts

        class Points:  # defined in the test module: the spin process imports it from there
            def __init__(self, n):
                self.n = n
            def __radd__(self, other):
                return other + self.n

        def test_pickled(runner):
            r = runner("scoring.py")
            score = r.run().run["score"].task.pathspec
            spun = r.spin(score, artifacts={"values": [Fraction(1, 2), Points(2)]}, persist=True)
            assert_artifacts(spun, total=2.5)
            spun = r.spin(score, artifacts={"values": [math.inf]}, persist=True)
            assert_artifacts(spun, total=math.inf)
        """
    )
    result = flow_pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)


def test_spin_join_step_keyed_by_input(flow_pytester: pytest.Pytester) -> None:
    flow_pytester.makepyfile(
        """
        from pytest_metaflow import assert_artifacts

        def test_join(runner):
            r = runner("joining.py")
            run = r.run().run
            inputs = {step: f"{run.id}/{step}/{run[step].task.id}" for step in ("a", "b")}
            spun = r.spin(run["join"].task.pathspec,
                          artifacts={inputs["a"]: {"x": 100}, inputs["b"]: {"x": 20}}, persist=True)
            assert_artifacts(spun, total=120)
        """
    )
    result = flow_pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)


def test_async_spin_with_artifacts(flow_pytester: pytest.Pytester) -> None:
    flow_pytester.makepyfile(
        """
        import pytest
        from pytest_metaflow import assert_artifacts

        @pytest.mark.asyncio
        async def test_async(runner, metaflow_store):
            r = runner("scoring.py")
            score = r.run().run["score"].task.pathspec
            spun = await r.async_spin(score, artifacts={"values": [1, 1]}, persist=True)
            await spun.wait()
            assert spun.status == "successful"
            assert_artifacts(spun, total=2.0)
            r.cleanup()
            assert not list(metaflow_store.tmp.glob("spin_artifacts_*"))
        """
    )
    flow_pytester.makeini(
        "[pytest]\naddopts = -p no:cacheprovider\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n"
    )
    result = flow_pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)


def test_spin_errors_are_clear(flow_pytester: pytest.Pytester) -> None:
    flow_pytester.makepyfile(
        """
        import pytest
        from pytest_metaflow.errors import FlowStartError

        class Unloadable:
            def __reduce__(self):  # picklable here, fails when the spin process unpickles it
                return (int, ("not a number",))

        @pytest.fixture
        def score(runner):
            r = runner("scoring.py")
            return r, r.run().run["score"].task.pathspec

        def test_unpicklable(score):
            r, pathspec = score
            with pytest.raises(TypeError, match="artifact 'values' of type function cannot be passed"):
                r.spin(pathspec, artifacts={"values": lambda: 1})

        def test_both_kinds(score, tmp_path):
            r, pathspec = score
            with pytest.raises(TypeError, match="artifacts= or artifacts_module="):
                r.spin(pathspec, artifacts={"values": [1]}, artifacts_module=str(tmp_path / "m.py"))

        def test_fails_to_load_in_spin_process(score):
            r, pathspec = score
            with pytest.raises(FlowStartError) as info:
                r.spin(pathspec, artifacts={"values": Unloadable()})
            assert "artifact 'values' passed to spin(artifacts=...) cannot be unpickled" in str(info.value)
            assert "ValueError: invalid literal for int()" in str(info.value)
        """
    )
    result = flow_pytester.runpytest_subprocess()
    result.assert_outcomes(passed=3)


@pytest.mark.parametrize(
    "value, literal",
    [
        ([1, 2.5, "a", None, True], True),
        ({"k": (1, b"x")}, True),
        (float("nan"), False),
        ({1, 2}, True),
        (range(3), False),
    ],
)
def test_module_source_writes_literals_else_pickles(value: object, literal: bool, tmp_path: Path) -> None:
    side = tmp_path / "m.pickle"
    source = _spin.artifacts_module_source({"v": value}, side)
    assert (f"'v': {value!r}," in source) is literal
    assert ("'v': _PICKLED['v']," in source) is (not literal)
    assert side.exists() is (not literal)
    namespace: dict = {}
    exec(compile(source, "artifacts.py", "exec"), namespace)
    loaded = namespace["ARTIFACTS"]["v"]
    assert loaded == value or (value != value and loaded != loaded)  # nan


def test_big_values_go_to_the_side_file(tmp_path: Path) -> None:
    big = "x" * (_spin.LITERAL_BUDGET + 1)
    module, files = _spin.write_artifacts_module({"small": [1, 2], "big": big, "blob": bytearray(10)}, tmp_path, "t")
    source = module.read_text()
    assert len(source) < 10_000, "big values must not be embedded in the source"
    assert "'small': [1, 2]," in source
    namespace: dict = {}
    exec(compile(source, str(module), "exec"), namespace)
    assert namespace["ARTIFACTS"] == {"small": [1, 2], "big": big, "blob": bytearray(10)}
    assert sorted(files) == sorted([module, module.with_suffix(".pickle")])


def test_module_source_rejects_non_dict() -> None:
    with pytest.raises(TypeError, match="dict of artifact name to value, got list"):
        _spin.artifacts_module_source([("v", 1)])  # type: ignore[arg-type]


def test_unused_artifact_names_warn_and_unpersisted_task_says_persist(flow_pytester: pytest.Pytester) -> None:
    """Issue 10.16: a name the step never reads is named; reading a task spun without persist says to pass it."""
    flow_pytester.makepyfile(
        """
        import pytest
        from pytest_metaflow import PytestMetaflowWarning, assert_artifacts

        @pytest.fixture
        def score(runner):
            r = runner("scoring.py")
            return r, r.run().run["score"].task.pathspec

        def test_typo_warns(score):
            r, pathspec = score
            with pytest.warns(PytestMetaflowWarning, match=r"step 'score' of ScoringFlow never reads 'valeus'") as record:
                r.spin(pathspec, artifacts={"valeus": [1], "values": [2]}, persist=True)
            assert record[0].filename == __file__  # points at the test's line

        def test_used_names_do_not_warn(score, recwarn):
            r, pathspec = score
            assert_artifacts(r.spin(pathspec, artifacts={"values": [2]}, persist=True), total=2.0)
            assert not [w for w in recwarn if issubclass(w.category, PytestMetaflowWarning)]

        def test_join_inputs_are_checked(runner):
            r = runner("joining.py")
            run = r.run().run
            a = f"{run.id}/a/{run['a'].task.id}"
            with pytest.warns(PytestMetaflowWarning, match="never reads 'y'"):
                r.spin(run["join"].task.pathspec, artifacts={a: {"x": 1, "y": 2}})

        def test_unpersisted(score):
            r, pathspec = score
            spun = r.spin(pathspec, artifacts={"values": [5]})
            with pytest.raises(KeyError, match="without persist=True.*pass persist=True to read artifact 'total'"):
                spun.task["total"]
            with pytest.raises(AttributeError, match="without persist=True.*pass persist=True to read 'total'"):
                spun.task.data.total
            assert spun.task.spun_without_persist
        """
    )
    result = flow_pytester.runpytest_subprocess()
    result.assert_outcomes(passed=4)
