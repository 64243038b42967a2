"""``@kubernetes`` / ``@batch`` that run the step locally (pytest-metaflow, ``--metaflow-remote=local``)."""

from typing import Any

from metaflow.decorators import StepDecorator


class _AnyAttribute(dict[str, Any]):
    """Accepts every attribute the real decorator takes (cpu, image, queue, ...); none has an effect."""

    def __contains__(self, key: object) -> bool:
        return True


class LocalKubernetesDecorator(StepDecorator):
    name = "kubernetes"
    defaults = _AnyAttribute()


class LocalBatchDecorator(StepDecorator):
    name = "batch"
    defaults = _AnyAttribute()
