import importlib.util
from pathlib import Path

from pytest_metaflow import assert_artifacts

METAFLOW = Path(importlib.util.find_spec("metaflow").submodule_search_locations[0])
HELLO_CLOUD = str(METAFLOW / "tutorials" / "05-hello-cloud" / "hello-cloud.py")


def test_hello_cloud(runner):  # Metaflow's 05-hello-cloud tutorial, unchanged
    result = runner(HELLO_CLOUD).run()
    assert_artifacts(result, step="hello", message="Hi from the cloud!")
