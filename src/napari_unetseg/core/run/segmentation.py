"""One segmentation path: a request in; labels, maps and provenance out.

Every way of segmenting an image that fits in memory goes through :func:`segment`: the
``unetseg predict`` command and its Dask workers (:mod:`.batch`), the Segment panel, and
Python users. It decides the stack mode, the thresholds (a 3D run lowers the model's seed
threshold unless one was given), the one magnification of the image (the nucleus diameter,
estimated on its middle plane), predicts, runs the watershed at that scale, links ids
through Z or over time, and writes the provenance that goes with the labels. Images larger
than memory go block by block (:mod:`.blockwise`), with the same thresholds and provenance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..base.choices import STACK_MODES, StackMode, check_choice
from ..base.thresholds import Thresholds
from ..inference.predictor import DEFAULT_TILE, check_axes, planes_of

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


@dataclass(frozen=True)
class SegmentationRequest:
    """What to segment and how; everything but the image and the model.

    Parameters
    ----------
    axes : str, optional
        The image's axes (``"ZYX"``, ``"YXC"``, ...); guessed from its shape otherwise.
    mode : {"auto", "2d", "stitch", "3d"}
    diameter : float, "auto" or None
        Median nucleus diameter in pixels; "auto" or None estimates it.
    thresholds : Thresholds or dict, optional
        Over the model's own. In the 3d mode a lower seed threshold is used unless one is
        given (:meth:`.Thresholds.for_volume`).
    track : bool
        Link ids over time (a T axis, or the only extra axis when not stitching).
    stitch_iou : float
        Overlap that links two objects of neighbouring planes (stitch mode).
    voxel_size : (z, y, x), optional
        In µm; its anisotropy shapes the 3d mode's views.
    tile, tta
        As for :meth:`.Predictor.predict_plane`.
    keep_maps : bool
        Keep every plane's maps (:attr:`Segmentation.maps`) for re-thresholding or saving;
        otherwise large planes are processed in bands and their maps dropped.
    planes : tuple of int, optional
        Only these planes (flat indices over the leading axes) of a stack; implies
        ``keep_maps``. Other planes' labels are 0.
    link : bool
        Link ids as the mode and ``track`` say; a panel that links on display turns it off.
    model, source, channel
        For the provenance: the model's name, the image's, the 1-based channel used.
    """

    axes: str | None = None
    mode: StackMode = "auto"
    diameter: float | str | None = "auto"
    thresholds: Thresholds | dict | None = None
    track: bool = False
    stitch_iou: float = 0.25
    voxel_size: tuple[float, float, float] | None = None
    tile: int = DEFAULT_TILE
    tta: bool = False
    keep_maps: bool = False
    planes: tuple[int, ...] | None = None
    link: bool = True
    model: str = ""
    source: str = ""
    channel: int | None = None


@dataclass
class Segmentation:
    """The result of :func:`segment`.

    Attributes
    ----------
    labels : ndarray
        The image's spatial shape (channels dropped), uint16 or wider when needed.
    axes : str
        The labels' axes.
    mode : str
        The stack mode used (never "auto").
    thresholds : Thresholds
        The thresholds used.
    diameter : float or None
        The nucleus diameter (px) the image was sized by; None without one.
    maps : StackSegmentation or VolumeSegmentation or None
        The maps and cached watersheds (``keep_maps``, ``planes`` or the 3d mode).
    provenance : dict
        What made the labels (written into label files and layer metadata).
    """

    labels: np.ndarray
    axes: str
    mode: str
    thresholds: Thresholds
    diameter: float | None
    maps: object | None
    provenance: dict

    def map_array(self, n_outputs: int) -> np.ndarray:
        """Every map channel as one (C, ...spatial) float32 array (0 where not predicted)."""
        return np.stack([self.maps.channel(c, self.labels.shape) for c in range(n_outputs)])


def stack_mode(mode: str, axes: str) -> str:
    """The mode for an image with ``axes``: ``auto`` is 3d with a Z axis, else 2d; modes
    other than 2d need a Z axis.

    >>> stack_mode("auto", "ZYX"), stack_mode("auto", "TYX")
    ('3d', '2d')
    """
    check_choice(mode, STACK_MODES, "stack mode")
    if mode == "auto":
        return "3d" if "Z" in axes else "2d"
    if mode != "2d" and "Z" not in axes:
        raise ValueError(f"--mode {mode} needs a Z axis; the image's axes are {axes} "
                         "(give --axes if Z was taken for T)")
    return mode


def thresholds_for(model_thresholds: dict, given: Thresholds | dict | None,
                   mode: str) -> Thresholds:
    """The thresholds a run uses: ``given`` over the model's; the 3d mode lowers the
    model's seed threshold unless one was given.

    >>> m = {"mask_threshold": 0.5, "seed_threshold": 0.6, "min_size": 8}
    >>> thresholds_for(m, {"min_size": 4}, "3d").as_dict()
    {'mask_threshold': 0.5, 'seed_threshold': 0.4, 'min_size': 4}
    >>> thresholds_for(m, {"seed_threshold": 0.5}, "3d").seed
    0.5
    """
    t = Thresholds.over(model_thresholds, given)
    seed_given = isinstance(given, Thresholds) or "seed_threshold" in (given or {})
    if mode == "3d" and not seed_given:
        t = Thresholds.over(Thresholds.of(model_thresholds).for_volume(), given)
    return t


def provenance(request: SegmentationRequest, thresholds: Thresholds, mode: str,
               **extra) -> dict:
    """The one provenance record of labels (label files, OME-Zarr, layer metadata)."""
    return {"model": str(request.model), "thresholds": thresholds.as_dict(),
            "source": request.source, "tta": request.tta, "mode": mode,
            "track": request.track,
            **({"channel": request.channel} if request.channel is not None else {}),
            **({"voxel_size_um": list(request.voxel_size)} if request.voxel_size else {}),
            **extra}


def segment(predictor, image, request: SegmentationRequest | None = None, *,
            progress: ProgressFn | None = None,
            cancel: CancelFn | None = None) -> Segmentation:
    """Segment a 2D image, a Z or T stack, or a TZ stack.

    Parameters
    ----------
    predictor : Predictor
    image : array-like
        Any shape the axes describe; planes are read one at a time (a Dask or Zarr array
        stays lazy outside the 3d mode).
    request : SegmentationRequest, optional
    progress : callable, optional
        ``progress(done, total)`` in tiles (planes for large stacks).
    cancel : callable, optional
        Returns True to stop; :class:`.Cancelled` is raised between tiles.

    Returns
    -------
    Segmentation
    """
    request = request or SegmentationRequest()
    axes = check_axes(tuple(image.shape), request.axes)
    mode = stack_mode(request.mode, axes)
    t = thresholds_for(predictor.thresholds, request.thresholds, mode)
    label_axes = axes.replace("C", "")
    if mode == "3d":
        maps, labels, d = _volumes(predictor, image, axes, t, request, progress, cancel)
    elif request.keep_maps or request.planes is not None:
        maps, labels, d = _kept_planes(predictor, image, axes, t, request, progress, cancel)
    else:
        maps, labels, d = _banded_planes(predictor, image, axes, t, request, progress, cancel)
    if request.link and (mode == "stitch" or request.track) and len(label_axes) > 2:
        from ..instances.stacks import link_stack

        labels = link_stack(labels, label_axes, stitch=mode == "stitch", track=request.track,
                            iou_threshold=request.stitch_iou)
    return Segmentation(labels, label_axes, mode, t, d, maps, provenance(request, t, mode))


def _volumes(predictor, image, axes, t: Thresholds, request, progress, cancel):
    from .volume import anisotropy, segment_volume

    return segment_volume(predictor, np.asarray(image), t.as_dict(),
                          anisotropy=anisotropy(request.voxel_size), diameter=request.diameter,
                          has_time="T" in axes, progress=progress, cancel=cancel)


def _kept_planes(predictor, image, axes, t: Thresholds, request, progress, cancel):
    """Maps of the chosen planes, kept in a StackSegmentation; one magnification for all."""
    from ..base.resample import scaled_shape
    from ..instances.postprocess import StackSegmentation

    planes, stack_shape = planes_of(image, axes)
    chosen = list(request.planes) if request.planes is not None else list(range(len(planes)))
    stack = StackSegmentation(predictor.targets, stack_shape)
    scale, d = predictor.plane_scale(np.asarray(planes[chosen[len(chosen) // 2]]),
                                     request.diameter, thresholds=t.as_dict(), cancel=cancel)
    per_plane = predictor.tile_count(scaled_shape(planes.shape[1:3], scale), request.tile)
    total = per_plane * len(chosen)
    for k, i in enumerate(chosen):
        maps = predictor.predict_plane(
            np.asarray(planes[i]), tile=request.tile, tta=request.tta, scale=scale,
            cancel=cancel, progress=None if progress is None else (
                lambda done, _t, k=k: progress(k * per_plane + done, total)))
        stack.add_plane(i, maps, scale)
    labels = stack.stack_labels(t.as_dict(), (*stack_shape, *planes.shape[1:3]))
    return stack, labels, d


def _banded_planes(predictor, image, axes, t: Thresholds, request, progress, cancel):
    """Labels plane by plane with bounded memory (large planes in bands); no maps kept."""
    from .pipeline import segment_image

    info: dict = {}
    labels = segment_image(predictor, image, t, axes=axes, tile=request.tile, tta=request.tta,
                           progress=progress, cancel=cancel, diameter=request.diameter,
                           info=info)
    return None, labels, (info["diameters"] or [None])[0]
