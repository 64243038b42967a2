"""Measure step code when coverage is measuring pytest.

Step code runs in the Metaflow runtime's task processes, two levels below
pytest. coverage (7.13+) starts measuring any Python process whose environment
holds ``COVERAGE_PROCESS_CONFIG`` (through the ``.pth`` file it installs), so
the child environment of a run carries the configuration of the coverage that
measures pytest: same ``source``, ``omit``, ``branch``..., ``parallel = True``
so that every process writes its own data file next to the parent's, where
``coverage combine`` (run by pytest-cov itself) finds it.
"""

from __future__ import annotations

import copy
import os
import sys
from typing import Any

CONFIG_VAR = "COVERAGE_PROCESS_CONFIG"


def child_env() -> dict[str, str]:
    """Extra environment that makes a run's processes measured like this one; empty when not measuring."""
    # Never import coverage ourselves: if nothing imported it, nothing measures.
    coverage = sys.modules.get("coverage")
    if coverage is None:
        return {}
    if tuple(getattr(coverage, "version_info", (0,))[:2]) < (7, 13):
        # COVERAGE_PROCESS_CONFIG came in 7.10.3, but the suite's checks that
        # children are measured pass from 7.13.0 on (7.12.0 lost their data).
        return {}
    cov = coverage.Coverage.current()
    if cov is None:
        return {}
    if "subprocess" in cov.config.patch:
        # coverage put its own COVERAGE_PROCESS_CONFIG in os.environ, which runs inherit.
        return {}
    config = copy.deepcopy(cov.config)
    config.parallel = True
    # The data file as the parent resolved it when it started: a later chdir of
    # the test, or the Runner's cwd, must not move the children's data elsewhere.
    data = getattr(cov, "_data", None)
    config.data_file = data.base_filename() if data is not None else os.path.abspath(config.data_file)
    return {CONFIG_VAR: config.serialize()}


def share_with_xdist_workers(config: Any) -> None:
    """Under ``coverage run -m pytest -n N``, have coverage measure the xdist workers too.

    coverage does not follow subprocesses by itself, so the workers, where the
    tests and their flow runs happen, would go unmeasured. pytest-cov measures
    its workers itself; coverage's ``patch = subprocess`` already covers them.
    """
    if not getattr(config.option, "numprocesses", None) or hasattr(config, "workerinput"):
        return
    if config.pluginmanager.hasplugin("_cov"):
        return
    env = child_env()
    if env:
        os.environ.update(env)  # the workers start after pytest_configure and inherit it
        config.add_cleanup(lambda: os.environ.pop(CONFIG_VAR, None))
