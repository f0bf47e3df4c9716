"""Image in, instance labels out: inference plus watershed with bounded memory."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..base.labels import label_dtype
from ..base.normalize import plane_scaling
from ..base.thresholds import Thresholds
from ..inference.predictor import (
    DEFAULT_TILE,
    CancelFn,
    Predictor,
    ProgressFn,
    check_axes,
    planes_of,
)
from ..instances.postprocess import SeededWatershed, combine_planes

#: Planes with more pixels than this are segmented in bands (see :func:`segment_plane`).
BAND_THRESHOLD_PIXELS = 16 * 2**20
BAND_HALO = 128
BAND_ROWS = DEFAULT_TILE - 2 * BAND_HALO  # a band and its halo make one default tile


def _band_starts(height: int, rows: int) -> list[tuple[int, int]]:
    return [(y, min(y + rows, height)) for y in range(0, height, rows)]


def segment_plane(
    predictor: Predictor,
    plane: np.ndarray,
    thresholds: dict,
    *,
    tile: int = DEFAULT_TILE,
    tta: bool = False,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    band_threshold: int = BAND_THRESHOLD_PIXELS,
    band_rows: int = BAND_ROWS,
    halo: int = BAND_HALO,
    scale: float = 1.0,
) -> np.ndarray:
    """Instance labels of one 2D plane (uint16, or uint32 beyond 65535 objects).

    Planes up to ``band_threshold`` pixels are processed whole. Larger ones go in horizontal
    bands of ``band_rows`` rows with ``halo`` extra rows above and below, so that the maps
    (8 bytes per pixel) and the watershed's working arrays exist for one band at a time.
    Every band is normalized like the whole plane. An object belongs to the band holding its
    top row and is discarded from bands whose halo cuts it, so with a halo taller than any
    object each object is taken once, whole, from a band where it has full context.

    ``scale`` resizes the plane (or each band) for the network; maps come back on the
    plane's grid and the watershed runs there, with ``min_size`` (an area at the model's
    scale) divided by ``scale**2``.
    """
    h, w = plane.shape[:2]
    t = Thresholds.of(thresholds).at_scale(scale)
    if h * w <= band_threshold or h <= band_rows + 2 * halo:
        maps = predictor.predict_plane(plane, tile=tile, tta=tta, progress=progress,
                                       cancel=cancel, scale=scale)
        return SeededWatershed(maps, predictor.targets).labels(*t)
    scaling = plane_scaling(plane, predictor.normalization)
    bands = _band_starts(h, band_rows)
    band_tile = max(tile, band_rows + 2 * halo)
    per_band = predictor.tile_count((band_rows + 2 * halo, w), band_tile)
    # uint16 until the objects outnumber it: the result is most of the memory that grows
    # with the image.
    out = np.zeros((h, w), np.uint16)
    n_objects = 0
    for k, (y0, y1) in enumerate(bands):
        ya, yb = max(0, y0 - halo), min(h, y1 + halo)
        maps = predictor.predict_plane(
            plane[ya:yb], tile=band_tile, tta=tta, cancel=cancel, scaling=scaling, scale=scale,
            progress=None if progress is None else (
                lambda d, _t, k=k: progress(k * per_band + d, per_band * len(bands))),
        )
        lab = SeededWatershed(maps, predictor.targets, overwrite_maps=True).labels(*t)
        del maps
        n = int(lab.max())
        if n == 0:
            continue
        # Top and bottom row (plane coordinates) of every object, from its bounding box.
        boxes = ndi.find_objects(lab)
        top = np.array([b[0].start if b else h for b in boxes], np.int64) + ya
        bottom = np.array([b[0].stop - 1 if b else -1 for b in boxes], np.int64) + ya
        top, bottom = np.r_[h, top], np.r_[-1, bottom]
        keep = (top >= y0) & (top < y1)
        if ya > 0:
            keep &= top > ya  # touches the upper cut: another band sees it whole
        if yb < h:
            keep &= bottom < yb - 1  # touches the lower cut
        keep[0] = False
        n_keep = int(keep.sum())
        if n_objects + n_keep > np.iinfo(out.dtype).max:
            out = out.astype(np.uint32)
        new_ids = np.zeros(n + 1, out.dtype)
        new_ids[keep] = np.arange(n_objects + 1, n_objects + 1 + n_keep, dtype=out.dtype)
        n_objects += n_keep
        relabelled = new_ids[lab]
        dst = out[ya:yb]
        free = (dst == 0) & (relabelled > 0)
        dst[free] = relabelled[free]
    return out


def segment_image(
    predictor: Predictor,
    image: np.ndarray,
    thresholds: dict | None = None,
    *,
    axes: str | None = None,
    tile: int = DEFAULT_TILE,
    tta: bool = False,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    diameter: float | str | None = "auto",
    info: dict | None = None,
) -> np.ndarray:
    """Instance labels of a 2D image or a stack, plane by plane, ids unique across planes.

    Parameters
    ----------
    predictor : Predictor
    image : ndarray
        Any shape :func:`predict` accepts.
    thresholds : dict, optional
        ``mask_threshold``, ``seed_threshold``, ``min_size``; the model's defaults otherwise.
    axes, tile, tta, progress, cancel, diameter
        As for :func:`predict`; ``progress`` counts planes for stacks.
    info : dict, optional
        Receives ``diameters``: the nucleus diameter (px) used for each plane (None where a
        model without a canonical size ran, or no nucleus was found). Stacks use one
        diameter, estimated on their middle plane.

    Returns
    -------
    ndarray
        Labels with the image's spatial shape (channels dropped), uint16 or uint32.
    """
    thresholds = Thresholds.over(predictor.thresholds, thresholds)
    image = np.asarray(image)
    axes = check_axes(image.shape, axes)
    planes, stack_shape = planes_of(image, axes)
    diameters: list[float | None] = []
    if info is not None:
        info["diameters"] = diameters

    # One magnification per image: estimated once (middle plane), used for every plane.
    scale, d = predictor.stack_scale(planes, diameter, thresholds=thresholds, cancel=cancel)

    def one_plane(plane, progress=None):
        diameters.append(d)
        return segment_plane(predictor, plane, thresholds, tile=tile, tta=tta,
                             progress=progress, cancel=cancel, scale=scale)

    if not stack_shape:
        return one_plane(planes[0], progress)
    n = planes.shape[0]

    def per_plane():
        for i in range(n):
            yield one_plane(planes[i])
            if progress is not None:
                progress(i + 1, n)

    out = combine_planes(per_plane(), (n, *planes.shape[1:3]))
    return out.astype(label_dtype(int(out.max())), copy=False).reshape(
        *stack_shape, *out.shape[-2:]
    )
