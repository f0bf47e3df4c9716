"""Tiled, batched, memory-bounded inference from images to probability maps."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import numpy as np

from ..base.choices import DEVICES, PRECISIONS
from ..base.modes import target_mode
from ..base.normalize import PlaneScaling, apply_scaling, plane_scaling
from ..base.resample import resize_maps, resize_plane, scaled_shape
from ..base.tiling import tile_grid
from .axes import check_axes, guess_axes, planes_of  # noqa: F401 (re-exported)
from .cache import ModelCache, checkpoint_key
from .kept_maps import KeptMaps

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]

#: Default tile edge on every device. On the CPU, ONNX Runtime's cost per pixel falls with
#: the tile size and every tile border costs overlap pixels twice; a 2048 tile holds a
#: 2048x2048 image whole. Working set of one tile with the bundled model: ~2 GB.
DEFAULT_TILE = 2048
#: Neighbouring tiles overlap by this much and hand over in its middle, 128 px inside each
#: tile, where the bundled model's outputs differ from a whole-image pass by at most 0.09
#: (0.15 at 32 px, 0.98 at the edge: benchmarks/bench_tile_reach.py).
DEFAULT_OVERLAP = 256


#: Below this tile edge an out-of-memory error is reported instead of retried.
MIN_RETRY_TILE = 256


class _TileTooLarge(Exception):
    """One tile alone exhausted the device's memory."""


class Cancelled(Exception):
    """Inference was cancelled between tiles; nothing was returned or written."""


# --------------------------------------------------------------------------- devices


def available_devices() -> list[str]:
    """Devices this machine can run on, best first (always includes ``"cpu"``)."""
    import torch

    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return [*found, "cpu"]


def resolve_device(device: str = "auto"):
    """``"auto"`` picks CUDA, then Apple MPS, then CPU; an absent device is a ValueError."""
    import torch

    device = (device or "auto").lower()
    avail = available_devices()
    if device == "auto":
        return torch.device(avail[0])
    kind = device.split(":")[0]
    if kind not in DEVICES[1:]:
        raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda or mps")
    if kind not in avail:
        raise ValueError(f"device {device!r} is not available here; available: {', '.join(avail)}")
    return torch.device(device)


# --------------------------------------------------------------------------- predictor


class Predictor:
    """A model prepared for inference on one device.

    Parameters
    ----------
    model : DynamicUNet, str or Path
        A built or loaded model, a checkpoint path, ``"default"`` for the bundled model, or a
        bioimage.io package (``.zip``, ``rdf.yaml``; see :mod:`.package`).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``.
    precision : {"auto", "fp32", "int8"}
        ``"int8"`` runs ``<checkpoint>.int8.onnx`` (made by ``unetseg quantize``) on the CPU.
        ``"auto"`` does so when that file exists and was made from this very checkpoint file
        (the bundled model ships one; README gives its speed and accuracy), and runs fp32
        otherwise.
    checkpoint : str or Path, optional
        The file an already loaded ``model`` came from, to find its int8 version.
    trust_code : bool
        Let a checkpoint build its encoder with a function it names (see
        :func:`.checkpoint.load_checkpoint`); refused by default.
    """

    def __init__(self, model, device: str = "auto", precision: str = "auto", *,
                 checkpoint: str | os.PathLike | None = None, trust_code: bool = False):
        from ..network.checkpoint import checkpoint_path, resolve_model
        from .package import is_package, read_package
        from .runtime import int8_file_for, optimize_for_inference

        if precision not in PRECISIONS:
            raise ValueError(f"precision must be 'auto', 'fp32' or 'int8', got {precision!r}")
        self.device = resolve_device(device)
        if precision == "int8" and self.device.type != "cpu":
            raise ValueError(f"int8 models run on the CPU only; use device='cpu' or fp32 on "
                             f"{self.device.type}")
        if is_package(model):  # a bioimage.io package: its own weights and preprocessing
            model = read_package(model, trust_code)
            run = model.runner(self.device, precision)
        else:
            if isinstance(model, (str, os.PathLike)):
                checkpoint = model
            if checkpoint is not None:
                checkpoint = checkpoint_path(checkpoint)
            int8_file = None
            if precision == "int8" or (precision == "auto" and self.device.type == "cpu"):
                int8_file = int8_file_for(checkpoint, required=precision == "int8")
            model = resolve_model(model, trust_code)
            run = optimize_for_inference(model, self.device, int8_file,
                                         int8_required=precision == "int8")
        self.model = model
        self.targets: str = model.targets
        self.normalization: dict = model.normalization
        self.thresholds: dict = dict(model.thresholds)
        #: Canonical nucleus diameter (px) the model works at; None: no size normalization.
        self.diameter: float | None = getattr(model, "diameter", None)
        self.n_outputs: int = model.head.out_channels
        #: Largest tile this device has memory for (lowered after an out-of-memory error).
        self.max_tile: int = 1 << 30
        self._run = run
        self._kept = KeptMaps()
        log.info("inference on %s with %s", self.device, self._run.backend)

    @property
    def backend(self) -> str:
        """``"onnxruntime"`` or ``"torch"``: what runs the network."""
        return self._run.backend

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        # Pad to the network's total stride here (reflect, as the model itself would), so
        # that exported graphs never branch on the input size.
        h, w = batch.shape[-2:]
        m = self.model.total_stride
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "edge"
            batch = np.pad(batch, ((0, 0), (0, 0), (0, ph), (0, pw)), mode=mode)
        return self._run(batch)[..., :h, :w]

    def _forward_safe(self, batch: np.ndarray, tta: bool) -> np.ndarray:
        """Forward a batch; on GPU out-of-memory retry in halves instead of failing."""
        import torch

        try:
            if not tta:
                return self._forward(batch)
            # Flip test-time augmentation: average over identity, and flips in Y, X, YX.
            acc = self._forward(batch)
            for axes in ((2,), (3,), (2, 3)):
                flipped = np.ascontiguousarray(np.flip(batch, axis=axes))
                acc += np.flip(self._forward(flipped), axis=axes)
            return acc / 4
        except torch.OutOfMemoryError:
            if batch.shape[0] == 1:
                raise _TileTooLarge(batch.shape[-1]) from None
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            half = batch.shape[0] // 2
            log.warning("out of GPU memory; retrying with %d tiles per batch", half)
            return np.concatenate(
                [self._forward_safe(batch[:half], tta), self._forward_safe(batch[half:], tta)]
            )

    def predict_plane(
        self,
        plane: np.ndarray,
        *,
        tile: int = DEFAULT_TILE,
        overlap: int = DEFAULT_OVERLAP,
        batch_size: int | None = None,
        tta: bool = False,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
        out: np.ndarray | None = None,
        scaling: PlaneScaling | None = None,
        scale: float = 1.0,
    ) -> np.ndarray:
        """Probability maps (C, Y, X) float32 of one 2D plane (Y, X) or (Y, X, C).

        ``scaling`` lets a caller that processes a plane in parts normalize every part
        like the whole plane. ``scale`` resizes the plane by that factor for the network
        (see :mod:`.diameter`); the maps are resized back to the plane's own grid.
        ``progress(done, total)`` counts tiles.
        """
        h, w = plane.shape[:2]
        kept = self._kept.take(plane, (scale, tile, overlap, tta), scaling)
        if kept is not None:
            if progress is not None:
                n = self.tile_count(scaled_shape((h, w), scale), tile, overlap)
                progress(n, n)
            if out is None:
                return kept[0]
            out[...] = kept[0]
            return out
        if scaling is None:
            scaling = plane_scaling(plane, self.normalization)
        if out is None:
            out = np.zeros((self.n_outputs, h, w), np.float32)
        if scale != 1.0 and scaled_shape((h, w), scale) != (h, w):
            small = self.predict_plane(
                resize_plane(plane, scaled_shape((h, w), scale)), tile=tile, overlap=overlap,
                batch_size=batch_size, tta=tta, progress=progress, cancel=cancel,
                scaling=scaling)
            return resize_maps(small, (h, w), out=out)
        if scaling.constant:
            # Nothing to see: background everywhere rather than noise from the network.
            return target_mode(self.targets).empty_maps(out)
        tile = min(tile, self.max_tile)
        if batch_size is None:
            # A CPU is saturated by one large tile; batching only multiplies working memory.
            batch_size = 1 if self.device.type == "cpu" else 4
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        try:
            return self._blend_tiles(plane, tile, overlap, batch_size, tta, scaling, out,
                                     progress, cancel)
        except _TileTooLarge:
            # One tile does not fit the device's memory: smaller tiles from now on.
            if tile // 2 < MIN_RETRY_TILE:
                raise RuntimeError(f"out of {self.device.type} memory even for one "
                                   f"{tile}x{tile} tile; use the CPU") from None
            self.max_tile = tile // 2
            log.warning("out of %s memory for one tile; retrying with tiles of %d",
                        self.device.type, self.max_tile)
            return self.predict_plane(
                plane, tile=self.max_tile, overlap=min(overlap, self.max_tile // 4),
                batch_size=1, tta=tta, progress=progress, cancel=cancel, out=out,
                scaling=scaling)

    def keep_estimate_maps(self, plane: np.ndarray, scale: float, scaling: PlaneScaling,
                           maps: np.ndarray, own_scaling: bool = True) -> None:
        """Keep maps that :meth:`predict_plane` made of ``plane`` with default settings at
        ``scale`` and ``scaling`` (``own_scaling``: the plane's own); the next such request
        for the same pixels returns them (once)."""
        self._kept.keep(plane, (scale, DEFAULT_TILE, DEFAULT_OVERLAP, False), scaling,
                        own_scaling, maps)

    def forget_kept_maps(self) -> None:
        """Drop maps kept by :meth:`keep_estimate_maps` (benchmarks time cold runs)."""
        self._kept.clear()

    def _blend_tiles(self, plane, tile, overlap, batch_size, tta, scaling, out, progress,
                     cancel) -> np.ndarray:
        """Run overlapping tiles and blend them with separable weights into ``out``."""
        h, w = plane.shape[:2]
        grid = tile_grid((h, w), tile, overlap, align=self.model.total_stride)
        wy, wx = grid.windows(0), grid.windows(1)
        # The weights are separable, so each pixel's total weight is a product of two 1D sums.
        norm_y = 1.0 / grid.weight_sum(0, h)
        norm_x = 1.0 / grid.weight_sum(1, w)
        out[...] = 0
        th, tw = grid.size
        tiles = list(grid)
        for b in range(0, len(tiles), batch_size):
            if cancel is not None and cancel():
                raise Cancelled("cancelled")
            chunk = tiles[b : b + batch_size]
            batch = np.stack([self._tile_input(plane, y, x, th, tw, scaling)
                              for _, _, y, x in chunk])
            probs = self._forward_safe(batch, tta)
            for (iy, ix, y, x), p in zip(chunk, probs):
                vh, vw = min(th, h - y), min(tw, w - x)  # tiles may reach past the image
                p = p[:, :vh, :vw]
                p *= wy[iy][:vh, None]
                p *= wx[ix][None, :vw]
                out[:, y : y + vh, x : x + vw] += p
            if progress is not None:
                progress(b + len(chunk), len(tiles))
        out *= norm_y[:, None]
        out *= norm_x[None, :]
        return out

    def tile_count(
        self, shape: tuple[int, int], tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP
    ) -> int:
        """How many tiles :meth:`predict_plane` runs for a plane of this (Y, X) shape."""
        return len(tile_grid(tuple(shape[:2]), tile, overlap, align=self.model.total_stride))

    def _tile_input(self, plane, y, x, th, tw, scaling) -> np.ndarray:
        """Normalized tile; past the image's end, reflection as for the whole plane."""
        t = apply_scaling(plane[y : y + th, x : x + tw], scaling, self.normalization)
        ph, pw = th - t.shape[1], tw - t.shape[2]
        if ph or pw:
            mode = "reflect" if ph < t.shape[1] and pw < t.shape[2] else "edge"
            t = np.pad(t, ((0, 0), (0, ph), (0, pw)), mode=mode)
        return t

    def predict(
        self,
        image: np.ndarray,
        *,
        axes: str | None = None,
        tile: int = DEFAULT_TILE,
        overlap: int = DEFAULT_OVERLAP,
        batch_size: int | None = None,
        tta: bool = False,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
        diameter: float | str | None = None,
        info: dict | None = None,
    ) -> np.ndarray:
        """Probability maps of an image; see :func:`predict`.

        ``info``, when given, receives ``scales`` and ``diameters``, one per plane.
        """
        image = np.asarray(image)
        axes = check_axes(image.shape, axes)
        planes, stack_shape = planes_of(image, axes)
        h, w = planes.shape[1:3]
        scale, d = self.stack_scale(planes, diameter, cancel=cancel)
        scales = [scale] * planes.shape[0]
        if info is not None:
            info.update(scales=scales, diameters=[d] * planes.shape[0])
        counts = [self.tile_count(scaled_shape((h, w), s), tile, overlap) for s in scales]
        done = np.concatenate([[0], np.cumsum(counts)])
        out = np.empty((self.n_outputs, planes.shape[0], h, w), np.float32)
        for i in range(planes.shape[0]):
            self.predict_plane(
                planes[i],
                tile=tile,
                overlap=overlap,
                batch_size=batch_size,
                tta=tta,
                progress=None if progress is None else (
                    lambda d, _t, start=int(done[i]): progress(start + d, int(done[-1]))),
                cancel=cancel,
                out=out[:, i],
                scale=scales[i],
            )
        return out.reshape(self.n_outputs, *stack_shape, h, w)

    def stack_scale(self, planes, diameter: float | str | None = None, *,
                    thresholds: dict | None = None, cancel: CancelFn | None = None):
        """One rescale factor for all planes of an image (a stack has one magnification).

        The diameter is estimated on the middle plane; see :meth:`plane_scale`.
        """
        return self.plane_scale(planes[len(planes) // 2], diameter, thresholds=thresholds,
                                cancel=cancel)

    def plane_scale(
        self, plane: np.ndarray, diameter: float | str | None = None, *,
        thresholds: dict | None = None, scaling: PlaneScaling | None = None,
        cancel: CancelFn | None = None,
    ) -> tuple[float, float | None]:
        """Rescale factor for one plane, and the nucleus diameter (px) it is based on.

        Parameters
        ----------
        plane : ndarray
            (Y, X) or (Y, X, C).
        diameter : "auto", None or float
            The plane's median nucleus diameter in pixels; "auto" or None estimates it
            (:func:`.diameter.estimate_scale`).
        thresholds, scaling, cancel
            Used by the estimate.

        Returns
        -------
        (float, float or None)
            1.0 and None for a model without a canonical size, or when no nucleus is found.
        """
        from .diameter import estimate_scale, parse_diameter, scale_for

        d = parse_diameter(diameter)
        if not self.diameter:
            return 1.0, d
        if d is None:
            return estimate_scale(self, plane, thresholds, scaling=scaling, cancel=cancel)
        return scale_for(d, self.diameter), d


_PREDICTORS = ModelCache()


def _predictor_for(model, device: str) -> Predictor:
    """Reuse predictors for checkpoint paths: loading and export cost seconds per call."""
    if not isinstance(model, (str, os.PathLike)):
        return Predictor(model, device)
    return _PREDICTORS.get(checkpoint_key(model, device), lambda: Predictor(model, device))


def predict(
    model,
    image: np.ndarray,
    *,
    axes: str | None = None,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    device: str = "auto",
    tta: bool = False,
    batch_size: int | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    diameter: float | str | None = "auto",
) -> np.ndarray:
    """Probability maps of an image, one per target channel.

    Parameters
    ----------
    model : DynamicUNet, str or Path
        A model, a checkpoint path, or ``"default"``.
    image : ndarray
        (Y,X), (Y,X,C) with C in 1..4 (alpha dropped), (Z,Y,X), (T,Y,X), (T,Z,Y,X), any of
        them with a trailing channel axis; any dtype. NaN/inf are treated as background.
    axes : str, optional
        Override the axes guess, e.g. ``"TYX"`` or ``"ZYXC"``.
    tile, overlap : int
        Tile size and minimum overlap in pixels.
    device : str
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"`` or ``"mps"``.
    tta : bool
        Average over flips (4x slower, slightly smoother maps).
    batch_size : int, optional
        Tiles per forward pass: 1 on the CPU, 4 on a GPU by default (halved automatically
        on GPU out-of-memory).
    progress : callable, optional
        ``progress(done, total)`` after each batch of tiles.
    cancel : callable, optional
        Checked before each batch; returning True raises :class:`Cancelled`.
    diameter : "auto" or float
        Median nucleus diameter in pixels. A size-normalized model (one with a canonical
        ``diameter`` in its checkpoint) rescales each plane so that its nuclei have the
        canonical size; "auto" estimates each plane's diameter. Ignored by other models.

    Returns
    -------
    ndarray
        float32 of shape (C, *image spatial shape), e.g. (2, Y, X) or (2, Z, Y, X), on the
        image's own pixel grid.
    """
    return _predictor_for(model, device).predict(
        image,
        axes=axes,
        tile=tile,
        overlap=overlap,
        batch_size=batch_size,
        tta=tta,
        progress=progress,
        cancel=cancel,
        diameter=diameter,
    )
