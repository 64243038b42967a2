"""Records each test's setup + call + teardown durations for bench/run.py."""

import json
import os

_durations = {}


def pytest_runtest_logreport(report):
    entry = _durations.setdefault(report.nodeid, {})
    entry[report.when] = report.duration
    if report.failed:
        entry["failed"] = True


def pytest_sessionfinish(session):
    path = os.environ.get("BENCH_DURATIONS")
    if path and not hasattr(session.config, "workerinput"):  # the xdist controller writes
        with open(path, "w") as f:
            json.dump(_durations, f)
