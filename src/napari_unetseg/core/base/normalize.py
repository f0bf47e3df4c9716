"""Input normalization shared by training and inference and stored in each checkpoint.

One function maps any 2D plane (gray or color, any dtype) to the network's input, so that a
model sees the same numbers at training and at inference time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The normalization used by models of this package unless a checkpoint says otherwise.
DEFAULT_NORMALIZATION = {
    "kind": "percentile",
    "low": 1.0,
    "high": 99.8,
    "channels": 3,
    # Bright-field and stained tissue show dark nuclei on a bright background; inverting
    # them makes every modality "bright nuclei on dark", which a small model learns faster.
    "invert_bright_background": True,
}

# Percentiles are computed on at most this many pixels (a fixed stride through the image),
# so that the cost and memory stay bounded on very large planes.
_MAX_SAMPLES = 1 << 20


@dataclass(frozen=True)
class PlaneScaling:
    """What normalization computed for one plane: ``(x - low) / (high - low)``, maybe inverted."""

    low: float
    high: float
    invert: bool

    @property
    def constant(self) -> bool:
        return not self.high > self.low


def as_plane(image: np.ndarray) -> np.ndarray:
    """Return a (Y, X, C) view of a 2D plane; C in 1..3 (alpha dropped)."""
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.view(np.uint8)
    if image.dtype.kind not in "uif":
        raise ValueError(
            f"image values of type {image.dtype} are not supported: give real numbers "
            "(for complex data, e.g. the magnitude np.abs(image))")
    if image.ndim == 2:
        return image[..., None]
    if image.ndim == 3 and 1 <= image.shape[-1] <= 4:
        return image[..., :3] if image.shape[-1] == 4 else image
    raise ValueError(
        f"expected a 2D plane (Y, X) or (Y, X, C) with C in 1..4, got shape {image.shape}"
    )


def plane_scaling(plane: np.ndarray, spec: dict | None = None) -> PlaneScaling:
    """Compute the intensity scaling of one plane (see :data:`DEFAULT_NORMALIZATION`).

    Parameters
    ----------
    plane : ndarray
        (Y, X) or (Y, X, C).
    spec : dict, optional
        Normalization spec; :data:`DEFAULT_NORMALIZATION` when omitted.
    """
    spec = spec or DEFAULT_NORMALIZATION
    p = as_plane(plane)
    flat = p.reshape(-1)
    step = max(1, flat.size // _MAX_SAMPLES)
    sample = flat[::step]
    if sample.dtype.kind == "f":
        sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return PlaneScaling(0.0, 0.0, False)
    if spec.get("kind") == "mean_std":
        # Zero mean, unit variance (bioimage.io packages): (x - mean) / std is
        # (x - low) / (high - low) with low = mean and high = mean + std.
        mean, std = float(sample.mean()), float(sample.std())
        return PlaneScaling(mean, mean + max(std, 1e-6), False)
    lo, hi, med = np.percentile(sample, [spec["low"], spec["high"], 50.0])
    if not hi > lo:
        # Few distinct values (e.g. a mostly empty frame): use the full range instead.
        lo, hi = float(sample.min()), float(sample.max())
    invert = bool(spec.get("invert_bright_background")) and hi > lo and (med - lo) / (hi - lo) > 0.5
    return PlaneScaling(float(lo), float(hi), invert)


def apply_scaling(
    plane: np.ndarray, scaling: PlaneScaling, spec: dict | None = None
) -> np.ndarray:
    """Scale a plane (or a tile of it) to the network input: float32 (C, Y, X)."""
    spec = spec or DEFAULT_NORMALIZATION
    p = as_plane(plane)
    channels = int(spec["channels"])
    if scaling.constant:
        return np.zeros((channels, *p.shape[:2]), np.float32)
    x = p.astype(np.float32)
    x -= scaling.low
    x *= 1.0 / (scaling.high - scaling.low)
    if scaling.invert:
        np.subtract(1.0, x, out=x)
    if p.dtype.kind == "f":
        # Pixels without a value (NaN, +-inf) are background: 0 after any inversion. Only
        # float images have them, and the pass is slow on large planes.
        np.nan_to_num(x, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    x = np.moveaxis(x, -1, 0)
    c = x.shape[0]
    if c != channels:
        if channels == 1:
            x = x.mean(axis=0, keepdims=True)
        else:
            gray = x.mean(axis=0, keepdims=True) if c != 1 else x
            # A broadcast assignment rather than np.repeat: the same copy, but NumPy lets
            # other threads (the viewer's) run while it copies.
            out = np.empty((channels, *gray.shape[1:]), np.float32)
            out[...] = gray
            x = out
    return np.ascontiguousarray(x, dtype=np.float32)


def normalize_plane(plane: np.ndarray, spec: dict | None = None) -> np.ndarray:
    """Normalize a whole 2D plane: float32 (C, Y, X) as the network expects it."""
    return apply_scaling(plane, plane_scaling(plane, spec), spec)
