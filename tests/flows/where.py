import os
import sys
import tempfile

from metaflow import FlowSpec, step


class WhereFlow(FlowSpec):
    """Records where Metaflow, in a task, would write its temp and cache files."""

    @step
    def start(self):
        from metaflow import metaflow_config as config
        from metaflow.plugins.cards.card_datastore import CardDatastore

        self.places = {
            "TEMPDIR (metaflow.S3 temp dirs)": os.path.abspath(config.TEMPDIR),
            "ARTIFACT_LOCALROOT (Azure/GCS temp dirs)": os.path.abspath(config.ARTIFACT_LOCALROOT),
            "CLIENT_CACHE_PATH": config.CLIENT_CACHE_PATH,
            "DATASTORE_SYSROOT_LOCAL": config.DATASTORE_SYSROOT_LOCAL,
            "DATASTORE_SYSROOT_SPIN": config.DATASTORE_SYSROOT_SPIN,
            "card root (local)": CardDatastore.get_storage_root("local"),
            "card root (spin)": CardDatastore.get_storage_root("spin"),
            "tempfile.gettempdir()": tempfile.gettempdir(),
            "METAFLOW_HOME": os.environ.get("METAFLOW_HOME"),
        }
        self.micromamba_home = os.environ.get("METAFLOW_TOKEN_HOME")
        self.stdin_is_devnull = os.path.samestat(os.fstat(0), os.stat(os.devnull))
        self.extension_on_path = any(p.endswith("_mfext") for p in sys.path)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    WhereFlow()
