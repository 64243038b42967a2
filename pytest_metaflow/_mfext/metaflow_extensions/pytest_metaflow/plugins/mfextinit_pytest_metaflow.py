# pytest-metaflow: replaces remote-compute step decorators by local no-ops when asked.
import os as _os

if _os.environ.get("PYTEST_METAFLOW_REMOTE") == "local":
    STEP_DECORATORS_DESC = [
        ("kubernetes", ".local_remote.LocalKubernetesDecorator"),
        ("batch", ".local_remote.LocalBatchDecorator"),
    ]
