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
#: A pass whose scale is within this factor of the one its measure calls for is final: its
#: scale is used as is (the model is trained with a wider scale jitter), so that its maps
#: can be the final maps.
REFINE_TOLERANCE = 1.15
#: A median diameter measured where the nuclei are this many times the canonical size, or
#: less, is trusted. Further off, the model merges small nuclei (a pass at half size
#: measured 22 px for nuclei of 13.6) or cuts large ones, and a pass at the scale the measure
#: suggests measures again.
TRUSTED_SIZE_FACTOR = 1.75
#: Largest side (pixels, original grid) of the region a diameter is estimated on.
ESTIMATE_REGION = 1024
#: The first pass sees the whole region at a size of at most this many pixels: nuclei large
#: enough to matter for the cost are still 10+ px across there, and its maps are the final
#: maps when its scale turns out right (large nuclei).
FIRST_PASS_PIXELS = 512 * 512
#: Later passes look at a central crop expected to hold this many nuclei at the canonical
#: size (enough for a median), from the foreground fraction the previous pass saw: a count
#: would not do, since the passes that need a next one are those that merged nuclei.
CROP_OBJECTS = 25
MIN_CROP_PIXELS = 128 * 128
#: Passes at most.
MAX_PASSES = 3


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


def first_pass_scale(shape: tuple[int, int]) -> float:
    """Scale of the estimate's first pass on a region of this (Y, X) shape.

    >>> first_pass_scale((1024, 1024)), first_pass_scale((256, 320))
    (0.5, 1.0)
    """
    return float(min(1.0, np.sqrt(FIRST_PASS_PIXELS / (shape[0] * shape[1]))))


def estimate_scale(predictor, plane: np.ndarray, thresholds: dict | None = None,
                   *, scaling=None, cancel=None) -> tuple[float, float | None]:
    """Estimate one plane's median nucleus diameter and the rescale factor it calls for.

    The first pass segments the plane's central ``ESTIMATE_REGION`` square at a size of at
    most ``FIRST_PASS_PIXELS`` pixels and measures the median object. Where the nuclei were
    far from the model's canonical size there (``TRUSTED_SIZE_FACTOR``), a next pass
    segments a central crop holding about ``CROP_OBJECTS`` of them at the scale the measure
    suggests, and so on (at most ``MAX_PASSES``): a model judges sizes best near its
    canonical size, and the crops keep the refinement cheap.

    When a pass's own scale is within ``REFINE_TOLERANCE`` of the one it calls for, that
    scale is the answer, and if the pass saw the whole plane its maps are left with the
    predictor (:meth:`.Predictor.keep_estimate_maps`): the final prediction of the
    plane takes them instead of predicting the same pixels again.

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
    (float, float or None)
        The rescale factor and the median diameter (px) it is based on; (1.0, None) when no
        nucleus is found (the caller then keeps the plane's size).
    """
    from ..base.normalize import plane_scaling
    from ..base.thresholds import Thresholds

    canonical = predictor.diameter
    if not canonical:
        return 1.0, None
    t = Thresholds.over(predictor.thresholds, thresholds)
    own_scaling = scaling is None
    if own_scaling:
        scaling = plane_scaling(plane, predictor.normalization)
    region = _central_region(plane, ESTIMATE_REGION)
    crop, scale, estimate = region, first_pass_scale(region.shape[:2]), None
    for _ in range(MAX_PASSES):
        whole = crop.shape == plane.shape
        d, fg_fraction, maps = _measure(predictor, crop, scale, scaling, t, cancel, keep=whole)
        if d is None:
            if estimate is None and scale < 1.0:
                scale = 1.0  # nothing at the reduced size: maybe nuclei too small for it
                continue
            break
        estimate, new_scale = d, scale_for(d, canonical)
        if max(new_scale / scale, scale / new_scale) < REFINE_TOLERANCE:
            if whole:
                predictor.keep_estimate_maps(plane, scale, scaling, maps, own_scaling)
            return scale, d
        if max(d * scale / canonical, canonical / (d * scale)) <= TRUSTED_SIZE_FACTOR:
            break
        crop = _crop_for(region, fg_fraction, new_scale, canonical)
        scale = new_scale
    return scale_for(estimate, canonical), estimate


def _measure(predictor, crop, scale, scaling, t, cancel, keep: bool):
    """(median diameter in crop pixels, foreground fraction, maps on the crop's grid or None).

    The watershed runs on the smaller of the crop's grid and the network's: at half size it
    costs a quarter, and the median scales back exactly.
    """
    from ..base.resample import resize_maps, resize_plane, scaled_shape
    from ..instances.postprocess import SeededWatershed

    shape = scaled_shape(crop.shape[:2], scale)
    if scale < 1.0 and shape != crop.shape[:2]:
        small = predictor.predict_plane(resize_plane(crop, shape), scaling=scaling,
                                        cancel=cancel)
        # The same maps predict_plane(crop, scale=scale) returns (it resizes the same way).
        maps = resize_maps(small, crop.shape[:2]) if keep else None
        shed = SeededWatershed(small, predictor.targets, overwrite_maps=True)
        labels = shed.labels(*t.at_scale(1.0))
        grid_scale = scale
    else:
        maps = predictor.predict_plane(crop, scaling=scaling, scale=scale, cancel=cancel)
        shed = SeededWatershed(maps, predictor.targets)
        labels = shed.labels(*t.at_scale(scale))
        grid_scale = 1.0
    d = median_diameter(labels, min_area=max(2, int(MIN_OBJECT_AREA * grid_scale**2
                                                    / scale**2)))
    # Before the size filter: small nuclei at a reduced size may fall below it.
    foreground = np.count_nonzero(shed.mask > t.mask) / shed.mask.size
    return (None if d is None else d / grid_scale), foreground, maps


def _crop_for(region: np.ndarray, fg_fraction: float, scale: float,
              canonical: float) -> np.ndarray:
    """Central crop of ``region`` expected to hold CROP_OBJECTS nuclei at ``scale``."""
    nucleus = np.pi / 4 * canonical**2  # network pixels of one nucleus at the canonical size
    pixels = max(MIN_CROP_PIXELS, CROP_OBJECTS * nucleus / max(fg_fraction, 1e-3))
    side = int(np.ceil(np.sqrt(pixels) / scale))
    return _central_region(region, side)


def estimate_diameter(predictor, plane: np.ndarray, thresholds: dict | None = None,
                      *, scaling=None, cancel=None) -> float | None:
    """Median nucleus diameter (pixels) of one 2D plane; see :func:`estimate_scale`."""
    return estimate_scale(predictor, plane, thresholds, scaling=scaling, cancel=cancel)[1]


__all__ = ["estimate_diameter", "estimate_scale", "first_pass_scale", "median_diameter",
           "parse_diameter", "scale_for"]
