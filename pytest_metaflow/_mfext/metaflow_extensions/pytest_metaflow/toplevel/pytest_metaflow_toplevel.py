# pytest-metaflow: the card writer finds the card root where the card reader looks.
#
# `card create` takes the local card root from CardDatastore.get_storage_root, which
# returns None when METAFLOW_CARD_LOCALROOT is set and otherwise walks up from the
# cwd (`<cwd>/.metaflow/mf.cards`), while get_cards() reads `<task's ds-root>/mf.cards`
# (Netflix/metaflow#2139). With a datastore sysroot configured, answer what the
# reader reads. Names are dunder-prefixed: Metaflow copies a toplevel module's other
# names into the `metaflow` namespace.
import os as __os


def __patch_card_root():
    from metaflow import metaflow_config as config
    from metaflow.plugins.cards import card_datastore

    original = card_datastore.CardDatastore.get_storage_root.__func__
    roots = {
        "local": (config.DATASTORE_SYSROOT_LOCAL, config.DATASTORE_LOCAL_DIR),
        "spin": (config.DATASTORE_SYSROOT_SPIN, config.DATASTORE_SPIN_LOCAL_DIR),
    }

    def get_storage_root(cls, storage_type):
        sysroot, local_dir = roots.get(storage_type, (None, None))
        if sysroot:
            return __os.path.join(sysroot, local_dir, config.CARD_SUFFIX)
        return original(cls, storage_type)

    card_datastore.CardDatastore.get_storage_root = classmethod(get_storage_root)


__patch_card_root()
del __patch_card_root


# pytest-metaflow: a step reading stdin gets EOF at once instead of blocking forever.
#
# Metaflow's runtime starts every task with stdin=PIPE and never writes to it nor
# closes it (runtime.Worker), so `input()` in a step waits for ever. Tests are not
# interactive: every process of a run started by the plugin reads /dev/null.
def __no_stdin():
    if __os.environ.get("PYTEST_METAFLOW_NO_STDIN") != "1":
        return
    try:
        fd = __os.open(__os.devnull, __os.O_RDONLY)
        __os.dup2(fd, 0)
        __os.close(fd)
    except OSError:  # no fd 0 to replace: reading it fails at once anyway
        pass


__no_stdin()
del __no_stdin


# pytest-metaflow: the task launcher (a per-run task zygote, docs/performance.md).
# Only in processes started with PYTEST_METAFLOW_LAUNCHER=fork, and only in a runtime.
def __launcher() -> None:
    if __os.environ.get("PYTEST_METAFLOW_LAUNCHER") != "fork":
        return
    import pytest_metaflow_launcher  # type: ignore[import-not-found]  # on the flow's PYTHONPATH

    pytest_metaflow_launcher.install()


__launcher()
del __launcher
