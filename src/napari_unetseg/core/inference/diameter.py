"""Nucleus size: measured from labels, estimated from an image, turned into a rescale factor.

A size-normalized model works at one canonical nucleus diameter (stored in its checkpoint as
``diameter``). Training rescales each image so that its median nucleus has that diameter;
inference estimates each plane's median diameter, rescales the plane to the canonical size,
predicts, and maps the result back to the original pixel grid.
"""

from __future__ import annotations

import numpy as np

#: Canonical nucleus diameter (px) of new size-normalized models: a little above the median
#: nucleus of the 2018 DSB training images (18 px), so that small nuclei get more pixels and
#: touching ones wider gaps.
DEFAULT_CANONICAL_DIAMETER = 24.0
#: Rescale factors are kept within this range (an estimate beyond it is more likely wrong
#: than a nucleus 4x larger or smaller than anything seen in training).
SCALE_LIMITS = (0.25, 4.0)
#: Objects smaller than this (pixels) are fragments, not nuclei, when measuring sizes.
MIN_OBJECT_AREA = 9
#: The estimate is refined at the rescaled size while it moves by more than this factor.
REFINE_TOLERANCE = 1.15
#: Largest side (pixels, original grid) of the region a diameter is estimated on.
ESTIMATE_REGION = 1024


def median_diameter(labels: np.ndarray, min_area: int = MIN_OBJECT_AREA) -> float | None:
    """Median equivalent-circle diameter of the objects in a label image.

    Parameters
    ----------
    labels : ndarray
        Instance labels (0 = background), any integer dtype.
    min_area : int
        Objects smaller than this many pixels are ignored (fragments).

    Returns
    -------
    float or None
        ``sqrt(4 area / pi)`` of the median object, or None without objects.
    """
    labels = np.asarray(labels)
    if labels.size == 0 or labels.max() <= 0:
        return None
    areas = np.bincount(labels.ravel().astype(np.int64, copy=False))[1:]
    areas = areas[areas >= min_area]
    if areas.size == 0:
        return None
    return float(np.sqrt(4.0 * np.median(areas) / np.pi))


def scale_for(diameter: float | None, canonical: float | None) -> float:
    """Rescale factor taking nuclei of ``diameter`` px to the model's ``canonical`` size."""
    if not diameter or not canonical:
        return 1.0
    return float(np.clip(canonical / diameter, *SCALE_LIMITS))


def parse_diameter(value) -> float | None:
    """``"auto"``/None -> None (estimate), a positive number -> that diameter in pixels.

    Raises
    ------
    ValueError
        One line naming the bad value and what is accepted.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("auto", "")):
        return None
    try:
        d = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"diameter must be 'auto' or a number of pixels, got {value!r}") from None
    if not np.isfinite(d) or d <= 0:
        raise ValueError(f"diameter must be 'auto' or a positive number of pixels, got {value!r}")
    return d


def _central_region(plane: np.ndarray, side: int) -> np.ndarray:
    h, w = plane.shape[:2]
    y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return plane[y0 : y0 + side, x0 : x0 + side]


def estimate_diameter(predictor, plane: np.ndarray, thresholds: dict | None = None,
                      *, scaling=None, cancel=None) -> float | None:
    """Estimate the median nucleus diameter (pixels) of one 2D plane.

    Segments the plane (at most its central ``ESTIMATE_REGION`` square) at its own size,
    measures the median object, rescales the plane to the model's canonical size by that
    measure and measures again, until the measure moves by less than ``REFINE_TOLERANCE``
    (at most three passes). A model judges sizes best near its canonical size: a first pass
    on nuclei twice too large tends to cut them into pieces, which the second pass corrects.

    Parameters
    ----------
    predictor : Predictor
        A size-normalized model (``predictor.diameter`` set).
    plane : ndarray
        (Y, X) or (Y, X, C).
    thresholds : dict, optional
        Watershed thresholds; the model's defaults otherwise.
    scaling : PlaneScaling, optional
        The whole plane's intensity scaling (computed here otherwise).
    cancel : callable, optional
        As for :meth:`Predictor.predict_plane`.

    Returns
    -------
    float or None
        None when no nucleus is found (the caller then keeps the plane's size).
    """
    from ..base.normalize import plane_scaling
    from ..base.thresholds import Thresholds
    from ..instances.postprocess import SeededWatershed

    canonical = predictor.diameter
    if not canonical:
        return None
    t = Thresholds.over(predictor.thresholds, thresholds)
    if scaling is None:
        scaling = plane_scaling(plane, predictor.normalization)
    region = _central_region(plane, ESTIMATE_REGION)
    scale, estimate = 1.0, None
    for _ in range(3):
        maps = predictor.predict_plane(region, scaling=scaling, scale=scale, cancel=cancel)
        labels = SeededWatershed(maps, predictor.targets, overwrite_maps=True).labels(
            *t.at_scale(scale))
        d = median_diameter(labels, min_area=max(2, int(MIN_OBJECT_AREA / scale**2)))
        if d is None:
            return estimate
        estimate = d
        new_scale = scale_for(d, canonical)
        if max(new_scale / scale, scale / new_scale) < REFINE_TOLERANCE:
            break
        scale = new_scale
    return estimate


__all__ = ["estimate_diameter", "median_diameter", "parse_diameter", "scale_for"]
