"""A trivial session: its start-up cost is the plugin's cost when unused."""

import os
import sys


def test_trivial(request):
    expected = os.environ["BENCH_EXPECT_PLUGIN"] == "1"
    assert request.config.pluginmanager.has_plugin("metaflow") is expected
    assert "metaflow" not in sys.modules
