"""The watershed's thresholds as one value: checked once, sized for any scale, one file form.

``mask`` and ``seed`` are probabilities; ``min_size`` is an area in pixels at the model's
own scale (its canonical nucleus size), so a plane predicted at rescale factor ``s`` drops
objects under ``min_size / s**2`` of its own pixels.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace
from typing import Any

#: Largest ``min_size`` (pixels at the model's scale): a nucleus of the canonical 24 px is
#: ~450 px, so anything near this already removes every object.
MAX_MIN_SIZE = 100_000

#: How much lower the 3d mode's seed threshold is than the model's own (2D) one. Averaged
#: over three views, a nucleus's seed map peaks lower than in XY alone (a slice near its side
#: sees little of its core). Chosen on volumes made from training images, not val.txt
#: (``bench_volumes.py --split train --seed-sweep``; the figures are in the README).
SEED_OFFSET_3D = 0.2

#: The serialized names (checkpoints, provenance, the CLI's options), in order.
KEYS = ("mask_threshold", "seed_threshold", "min_size")


class ThresholdError(ValueError):
    """A threshold out of its range: ``name`` (its serialized name) and ``reason``."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name} {reason}")
        self.name, self.reason = name, reason


def _number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class Thresholds:
    """Seeded-watershed thresholds, valid by construction.

    Examples
    --------
    >>> t = Thresholds(mask=0.5, seed=0.6, min_size=8)
    >>> t.at_scale(2.0)  # a plane magnified 2x: objects under 8 / 4 = 2 px are dropped
    (0.5, 0.6, 2)
    >>> Thresholds.of({"mask_threshold": 0.4}).as_dict()
    {'mask_threshold': 0.4, 'seed_threshold': 0.6, 'min_size': 8}
    >>> Thresholds(seed=1.5)  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ThresholdError: seed_threshold must be a number in [0, 1], got 1.5
    """

    mask: float = 0.5
    seed: float = 0.6
    min_size: float = 8

    def __post_init__(self):
        for name, v in (("mask_threshold", self.mask), ("seed_threshold", self.seed)):
            if not (_number(v) and 0 <= v <= 1):
                raise ThresholdError(name, f"must be a number in [0, 1], got {v!r}")
        if not (_number(self.min_size) and 0 <= self.min_size <= MAX_MIN_SIZE):
            raise ThresholdError("min_size", "must be a number of pixels from 0 to "
                                 f"{MAX_MIN_SIZE}, got {self.min_size!r}")

    @classmethod
    def of(cls, value: Thresholds | dict | None = None, **overrides) -> Thresholds:
        """Thresholds from a value, a serialized dict (missing keys: defaults) or None,
        with ``overrides`` (serialized names; None values are ignored) on top."""
        base = value if isinstance(value, Thresholds) else cls._from_dict(value or {})
        return base.overridden(overrides)

    @classmethod
    def over(cls, defaults: Thresholds | dict | None,
             given: Thresholds | dict | None = None) -> Thresholds:
        """``given`` (a value, a partial serialized dict or None) over ``defaults`` (a
        model's thresholds).

        >>> Thresholds.over({"mask_threshold": 0.3, "seed_threshold": 0.7, "min_size": 20},
        ...                 {"min_size": 5}).as_dict()
        {'mask_threshold': 0.3, 'seed_threshold': 0.7, 'min_size': 5}
        """
        if isinstance(given, Thresholds):
            return given
        return cls.of(defaults, **(given or {}))

    @classmethod
    def _from_dict(cls, d: dict) -> Thresholds:
        return cls().overridden(d)

    def overridden(self, overrides: dict) -> Thresholds:
        """A copy with the given serialized names replaced (None: keep)."""
        unknown = set(overrides) - set(KEYS)
        if unknown:
            raise ThresholdError(sorted(unknown)[0], "is not a threshold; the thresholds are "
                                 + ", ".join(KEYS))
        fields = dict(zip(KEYS, ("mask", "seed", "min_size")))
        changes = {fields[k]: v for k, v in overrides.items() if v is not None}
        return replace(self, **changes) if changes else self

    def as_dict(self) -> dict:
        """The serialized form (checkpoints, provenance, the panels)."""
        size = int(self.min_size) if float(self.min_size).is_integer() else self.min_size
        return {"mask_threshold": self.mask, "seed_threshold": self.seed, "min_size": size}

    def min_area(self, scale: float = 1.0) -> int:
        """``min_size`` in the pixels of a plane predicted at rescale factor ``scale``."""
        return int(round(self.min_size / scale**2))

    def at_scale(self, scale: float = 1.0) -> tuple[float, float, int]:
        """``(mask, seed, min_size)`` for ``SeededWatershed.labels`` on a plane predicted at
        rescale factor ``scale``."""
        return self.mask, self.seed, self.min_area(scale)

    def min_volume(self, anisotropy: float, scale: float) -> int:
        """The 3D size filter (voxels) matching ``min_size``: a ball whose section has that
        area, in the stack's voxels (fewer in Z by ``anisotropy``, in XY by ``scale``).

        >>> Thresholds(min_size=8).min_volume(anisotropy=1.0, scale=1.0)
        17
        """
        r = math.sqrt(float(self.min_size) / math.pi)
        return int(round(4 / 3 * math.pi * r**3 / anisotropy / scale**3))

    def for_volume(self) -> Thresholds:
        """The 3d mode's default from a model's 2D thresholds (seed lower by
        :data:`SEED_OFFSET_3D`, at least 0.05)."""
        return replace(self, seed=round(max(0.05, self.seed - SEED_OFFSET_3D), 3))


DEFAULT_THRESHOLDS = Thresholds().as_dict()
