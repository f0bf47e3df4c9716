"""Nuclei as 3D objects in Z-stacks, with a 2D model.

The 2D network sees the stack along three directions: XY planes, and XZ and YZ slices
resampled to square voxels (the Z step is usually 2-4 times the pixel size). The three sets
of maps are averaged on the stack's own grid and one seeded watershed runs in 3D, so a
nucleus that spans many planes is one object, and two nuclei touching in Z are separated by
the border the XZ/YZ views see between them (the idea of Cellpose's 3D mode).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..base.thresholds import Thresholds
from ..instances.postprocess import SeededWatershed, combine_planes

VIEWS = ("xy", "xz", "yz")


def parse_voxel_size(text: str | None) -> tuple[float, float, float] | None:
    """``"Z,Y,X"`` in µm (or one number for all three) as floats; None for None."""
    if text is None:
        return None
    try:
        values = [float(v) for v in str(text).split(",")]
    except ValueError:
        values = []
    if len(values) == 1:
        values *= 3
    if len(values) != 3 or not all(np.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"voxel size must be Z,Y,X in µm (positive numbers), got {text!r}")
    return tuple(values)


#: Z step / pixel size accepted for the 3d mode: beyond it the XZ and YZ views would be
#: stretched by hundreds (a typo such as 1000,1,1 took minutes, 1e300 crashed).
ANISOTROPY_LIMITS = (0.05, 20.0)


def check_anisotropy(voxel_size) -> float:
    """The anisotropy of a voxel size, refused (one-line ValueError) outside the limits."""
    a = anisotropy(voxel_size)
    lo, hi = ANISOTROPY_LIMITS
    if not lo <= a <= hi:
        raise ValueError(f"voxel size {tuple(voxel_size)}: the Z step is {a:.3g} times the "
                         f"pixel size; {lo:g} to {hi:g} times is supported (is the order Z, Y, "
                         "X, in µm?)")
    return a


def anisotropy(voxel_size: tuple[float, ...] | None) -> float:
    """Z step / XY pixel size of a (Z, Y, X) voxel size; 1 when unknown."""
    if not voxel_size:
        return 1.0
    z, y, x = voxel_size
    return float(z / np.sqrt(y * x))


def volume_scaling(volume: np.ndarray, normalization: dict):
    """One intensity scaling for a whole (Z, Y, X[, C]) volume (from up to 16 planes).

    Every slice of every direction is normalized alike: per-slice percentiles would blow
    up the noise of slices that cut few nuclei.
    """
    from ..base.normalize import plane_scaling

    step = max(1, volume.shape[0] // 16)
    sample = np.asarray(volume[::step])
    return plane_scaling(sample.reshape(-1, *sample.shape[2:]), normalization)


#: Planes are evened out when their fitted intensity range changes by more than this
#: factor through the stack (light lost with depth); below it the stack is left as it is.
ATTENUATION_FACTOR = 2.0


def depth_equalized(volume: np.ndarray, normalization: dict) -> np.ndarray:
    """The volume with light lost along Z made up for, when there is a marked trend.

    One intensity scaling serves the whole volume (see :func:`volume_scaling`); with depth
    attenuation (plane brightness falling 10x or 1000x through the stack) the deep planes
    then come out empty. Each plane's intensity range (its percentiles) is taken, a trend
    exp(a + b z) is fitted to it over all planes, and each plane is rescaled by the trend:
    a fit rather than each plane's own range, so that a plane cutting few nuclei is not
    stretched up to noise. Stacks whose fitted range changes by less than
    :data:`ATTENUATION_FACTOR` are returned unchanged.
    """
    from ..base.normalize import plane_scaling

    nz = volume.shape[0]
    if nz < 3:
        return volume
    stats = [plane_scaling(volume[z], normalization) for z in range(nz)]
    low = np.array([s.low for s in stats])
    span = np.array([s.high - s.low for s in stats])
    z = np.arange(nz, dtype=np.float64)
    ok = span > 0
    if ok.sum() < 3:
        return volume
    trend = np.exp(np.polyval(np.polyfit(z[ok], np.log(span[ok]), 1), z))
    if trend.max() / trend.min() < ATTENUATION_FACTOR:
        return volume
    gain = (np.median(trend) / trend).astype(np.float32)
    base = np.polyval(np.polyfit(z[ok], low[ok], 1), z).astype(np.float32)
    shape = (nz,) + (1,) * (volume.ndim - 1)
    out = np.asarray(volume, np.float32) - base.reshape(shape)
    out *= gain.reshape(shape)
    out += np.float32(np.median(low))
    return out


def volume_maps(
    predictor,
    volume: np.ndarray,
    *,
    anisotropy: float = 1.0,
    diameter: float | str | None = None,
    thresholds: dict | None = None,
    views: tuple[str, ...] = VIEWS,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> tuple[np.ndarray, float, float | None]:
    """Probability maps (C, Z, Y, X) of a volume, averaged over XY, XZ and YZ views.

    Parameters
    ----------
    predictor : Predictor
        A 2D model.
    volume : ndarray
        (Z, Y, X) or (Z, Y, X, C).
    anisotropy : float
        Z step / XY pixel size; XZ and YZ slices are stretched by it in Z before the network
        sees them.
    diameter : "auto", None or float
        Nucleus diameter in XY pixels; estimated on the middle plane when not given.
    thresholds : dict, optional
        Thresholds for the diameter estimate.
    views : tuple of str
        Which of "xy", "xz", "yz" to average.
    progress, cancel : callable, optional
        ``progress(done, total)`` per slice; ``cancel()`` is checked between slices.

    Returns
    -------
    maps : ndarray, scale : float, diameter : float or None
        The scale is the XY rescale factor used (see :meth:`Predictor.plane_scale`).
    """
    from ..base.resample import resize_maps, resize_plane
    from ..inference.predictor import Cancelled

    volume = np.asarray(volume)
    lo, hi = ANISOTROPY_LIMITS
    if not lo <= anisotropy <= hi:
        raise ValueError(f"the Z step is {anisotropy:.3g} times the pixel size; {lo:g} to "
                         f"{hi:g} times is supported")
    if volume.ndim not in (3, 4) or anisotropy <= 0:
        raise ValueError(f"a volume is (Z, Y, X[, C]) with a positive anisotropy; got shape "
                         f"{volume.shape}, anisotropy {anisotropy}")
    unknown = set(views) - set(VIEWS)
    if unknown or not views:
        raise ValueError(f"views must be some of {VIEWS}, got {views}")
    nz, ny, nx = volume.shape[:3]
    volume = depth_equalized(volume, predictor.normalization)
    scaling = volume_scaling(volume, predictor.normalization)
    scale, d = predictor.plane_scale(volume[nz // 2], diameter, thresholds=thresholds,
                                     scaling=scaling, cancel=cancel)
    out = np.zeros((predictor.n_outputs, nz, ny, nx), np.float32)
    sizes = {"xy": nz, "xz": ny, "yz": nx}
    total, done = sum(sizes[v] for v in views), 0
    z_size = max(1, int(round(nz * anisotropy * scale)))
    for view in views:
        for i in range(sizes[view]):
            if cancel is not None and cancel():
                raise Cancelled("cancelled")
            if view == "xy":
                out[:, i] += predictor.predict_plane(volume[i], scale=scale, scaling=scaling)
            else:
                cut = volume[:, i] if view == "xz" else volume[:, :, i]
                n = cut.shape[1]
                stretched = resize_plane(cut, (z_size, max(1, int(round(n * scale)))))
                maps = predictor.predict_plane(stretched, scaling=scaling)
                back = resize_maps(maps, (nz, n))
                if view == "xz":
                    out[:, :, i] += back
                else:
                    out[:, :, :, i] += back
            done += 1
            if progress is not None:
                progress(done, total)
    out /= len(views)
    return out, scale, d


class VolumeSegmentation:
    """Maps and cached 3D watersheds of a stack (ZYX) or of each frame of a TZYX stack.

    The same interface as :class:`.postprocess.StackSegmentation` for the panels:
    ``stack_labels`` gives labels with ids unique over the whole stack, one id per nucleus
    through Z.

    Parameters
    ----------
    targets : str
    stack_shape : tuple of int
        Leading shape of the image: ``(Z,)`` or ``(T, Z)``.
    anisotropy : float
        Z step / XY pixel size the maps were predicted with.
    """

    volumetric = True

    def __init__(self, targets: str, stack_shape: tuple[int, ...], anisotropy: float = 1.0):
        if len(stack_shape) not in (1, 2):
            raise ValueError(f"3D segmentation needs a Z axis; got stack shape {stack_shape}")
        self.targets = targets
        self.stack_shape = tuple(stack_shape)
        self.anisotropy = float(anisotropy)
        #: Per frame (0 for a single volume): SeededWatershed, (C, Z, Y, X) maps, XY scale.
        self.sheds: dict[int, SeededWatershed] = {}
        self.maps: dict[int, np.ndarray] = {}
        self.scales: dict[int, float] = {}

    @property
    def n_frames(self) -> int:
        return self.stack_shape[0] if len(self.stack_shape) == 2 else 1

    def add_frame(self, t: int, maps: np.ndarray, scale: float = 1.0) -> None:
        """Store the (C, Z, Y, X) maps of frame ``t`` (0 for a single volume)."""
        self.maps[t], self.scales[t] = maps, scale
        self.sheds[t] = SeededWatershed(maps, self.targets)

    def frame_labels(self, t: int, thresholds: dict) -> np.ndarray:
        """Labels 1..n of one frame's volume."""
        t_ = Thresholds.of(thresholds)
        return self.sheds[t].labels(
            t_.mask, t_.seed, t_.min_volume(self.anisotropy, self.scales.get(t, 1.0)))

    def stack_labels(self, thresholds: dict, shape: tuple[int, ...]) -> np.ndarray:
        """Labels of every frame, ids unique across frames (uint16, or uint32)."""
        per_frame = (self.frame_labels(t, thresholds) if t in self.sheds else None
                     for t in range(self.n_frames))
        return combine_planes(per_frame, (self.n_frames, *shape[-3:])).reshape(shape)

    def channel(self, c: int, shape: tuple[int, ...]) -> np.ndarray:
        """Map channel ``c`` of the whole stack, ``shape`` (0 in frames not segmented)."""
        out = np.zeros((self.n_frames, *shape[-3:]), np.float32)
        for t, m in self.maps.items():
            out[t] = m[c]
        return out.reshape(shape)

    def seed_map(self, plane: int) -> np.ndarray | None:
        """The seed map of one plane (flat index over the leading axes), or None."""
        t, z = divmod(plane, self.stack_shape[-1])
        shed = self.sheds.get(t)
        return None if shed is None else shed.seed_map[z]


def segment_volume(
    predictor,
    image: np.ndarray,
    thresholds: dict,
    *,
    anisotropy: float = 1.0,
    diameter: float | str | None = None,
    has_time: bool = False,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
):
    """3D segmentation of a ZYX (or TZYX with ``has_time``) stack, channels last if any.

    Returns
    -------
    (VolumeSegmentation, labels, diameter)
        Labels have the stack's shape without channels; the diameter is the first frame's.
    """
    image = np.asarray(image)
    frames = image if has_time else image[None]
    n_space = 3 + int(frames.ndim == 5)
    if frames.ndim - 1 != n_space:
        raise ValueError(f"expected a {'TZYX' if has_time else 'ZYX'} stack (channels last "
                         f"if any), got shape {image.shape}")
    stack_shape = frames.shape[:2] if has_time else frames.shape[1:2]
    seg = VolumeSegmentation(predictor.targets, tuple(stack_shape), anisotropy)
    first_d = None
    for t, vol in enumerate(frames):
        def tick(done, total, t=t):
            if progress is not None:
                progress(t * total + done, len(frames) * total)

        maps, scale, d = volume_maps(predictor, vol, anisotropy=anisotropy, diameter=diameter,
                                     thresholds=thresholds, progress=tick, cancel=cancel)
        seg.add_frame(t, maps, scale)
        first_d = d if t == 0 else first_d
    shape = (*stack_shape, *frames.shape[2:4])
    return seg, seg.stack_labels(thresholds, shape), first_d
