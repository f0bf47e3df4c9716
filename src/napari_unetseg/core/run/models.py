"""Models loaded where the work runs: a Predictor does not travel between processes, a
:class:`ModelSpec` does, and each process loads the model it names once."""

from __future__ import annotations

from dataclasses import dataclass

from ..inference.cache import ModelCache, checkpoint_key


@dataclass(frozen=True)
class ModelSpec:
    """A model to load where a task runs (a Predictor does not travel between machines)."""

    model: str = "default"
    device: str = "cpu"
    precision: str = "auto"
    trust_code: bool = False


_LOADED = ModelCache()


def loaded(predictor):
    """The Predictor for a :class:`ModelSpec`, loaded once per process; others as they are."""
    if not isinstance(predictor, ModelSpec):
        return predictor
    from ..inference.predictor import Predictor

    spec = predictor
    return _LOADED.get(checkpoint_key(spec.model, spec), lambda: Predictor(
        spec.model, spec.device, precision=spec.precision, trust_code=spec.trust_code))


def preload(spec: ModelSpec) -> None:
    """Load a model in this process now (``client.run(preload, spec)`` warms every worker)."""
    loaded(spec)
