"""Images larger than memory: segmentation block by block, objects stitched across blocks.

The plane is cut into square blocks; each block is predicted and watershed-segmented with a
halo of context around it, and *owns* the objects whose first pixel (raster order) lies in
it. With a halo wider than any nucleus, the owner sees each of its objects whole and with
full context, so no object is cut at a block border and none is counted twice. The output is
painted chunk by chunk (a chunk is a block) from the objects of that block and its eight
neighbours; object ids are the rank of each object's first pixel, as a whole-image labelling
numbers them. Every block reads its own window from the source and normalizes it like the
whole image, so memory per task is bounded by the block size and blocks can run anywhere
(:class:`.batch.DaskExecutor` runs them on a Dask cluster). Written here because no library
segments instances across blocks: dask's ``map_overlap`` trims halos but cannot tell which
block owns an object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

DEFAULT_BLOCK = 2048


@dataclass
class ImageSource:
    """A 2D image (Y, X) or (Y, X, C) read window by window: a file, a Zarr array or memory.

    Picklable without its data (a path and a key), so that workers on other machines open
    the file themselves; arrays in memory work in one process.
    """

    path: str | None = None
    key: str = "0"
    array: object = None
    #: (y0, y1, x0, x1): only this part of the image (the view on screen, say).
    region: tuple | None = None
    _opened: object = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, image) -> ImageSource:
        """An ImageSource for a path (OME-Zarr folder or TIFF) or an array."""
        if isinstance(image, ImageSource):
            return image
        if isinstance(image, (str, Path)):
            source = cls(path=str(image), key=_image_key(Path(image)))
            source.full_shape  # noqa: B018 - opened now: a bad file is one line, before work
            return source
        return cls(array=image)

    def __getstate__(self):
        return {"path": self.path, "key": self.key, "array": self.array,
                "region": self.region, "_opened": None}

    def part(self, region: tuple) -> ImageSource:
        """The same image, restricted to ``region`` (y0, y1, x0, x1), clipped to it."""
        h, w = self.full_shape[:2]
        y0, y1, x0, x1 = (int(v) for v in region)
        y0, y1, x0, x1 = max(0, y0), min(h, y1), max(0, x0), min(w, x1)
        if y0 >= y1 or x0 >= x1:
            raise ValueError(f"region {region} lies outside the image ({h} x {w})")
        return ImageSource(self.path, self.key, self.array, (y0, y1, x0, x1))

    @property
    def data(self):
        """The whole array, opened lazily (Zarr: only the chunks read are loaded)."""
        if self.array is not None:
            return self.array
        if self._opened is None:
            self._opened = _open_lazy(Path(self.path), self.key)
        return self._opened

    @property
    def full_shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the image, or of its region."""
        if self.region is None:
            return self.full_shape
        y0, y1, x0, x1 = self.region
        return (y1 - y0, x1 - x0, *self.full_shape[2:])

    def window(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Pixels [y0:y1, x0:x1] of the image (of its region, when it has one)."""
        oy, ox = (self.region[0], self.region[2]) if self.region is not None else (0, 0)
        return np.asarray(self.data[oy + y0:oy + y1, ox + x0:ox + x1])


def _multiscales(path: Path) -> dict:
    """The first ``multiscales`` entry of an OME-Zarr image; one-line errors otherwise."""
    import zarr

    from ..io.images import ImageReadError

    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception:
        raise ImageReadError(f"{path}: a plain Zarr array or an unreadable folder, not an "
                             "OME-Zarr image (a group with multiscales metadata)") from None
    attrs = dict(group.attrs)
    ms = (attrs.get("ome") or attrs).get("multiscales")
    if not ms:
        raise ImageReadError(f"{path}: no OME-Zarr multiscales metadata (is it an OME-Zarr "
                             "image?)")
    try:
        entry = ms[0]
        entry["datasets"][0]["path"]
        if not isinstance(entry, dict):
            raise TypeError
    except (TypeError, KeyError, IndexError):
        raise ImageReadError(f"{path}: damaged OME-Zarr multiscales metadata") from None
    return entry


def _image_key(path: Path) -> str:
    """The full-resolution array of an OME-Zarr image (its first multiscale dataset)."""
    from ..io.images import is_zarr

    if not is_zarr(path):
        return "0"
    return str(_multiscales(path)["datasets"][0]["path"])


def _ome_axes(path: Path) -> str | None:
    """The axes an OME-Zarr image declares (``"zyx"``), or None."""
    try:
        axes = _multiscales(path).get("axes")
        return "".join((a["name"] if isinstance(a, dict) else str(a))[0].lower()
                       for a in axes) if axes else None
    except Exception:
        return None


def _open_lazy(path: Path, key: str):
    import zarr

    from ..io.images import ImageReadError

    if path.is_dir():
        try:
            arr = zarr.open_group(str(path), mode="r")[key]
            arr.shape  # noqa: B018 - a group or a dangling path fails here
        except Exception:
            raise ImageReadError(f"{path}: its OME-Zarr dataset {key!r} is missing or not an "
                                 "array") from None
        axes = _ome_axes(path)
        if axes and len(axes) == arr.ndim:
            # OME-Zarr axes are [t][c][z]yx: never colour last. Length-1 axes are dropped.
            lead = [a for a, n in zip(axes[:-2], arr.shape[:-2]) if n > 1]
            if lead:
                raise ImageReadError(
                    f"{path}: block-by-block segmentation takes one 2D plane (y, x); this "
                    f"image has axes {axes}, shape {tuple(arr.shape)}")
            if arr.ndim > 2:
                return _Squeezed(arr, arr.ndim - 2)
            return arr
    else:
        import tifffile

        try:
            arr = zarr.open(tifffile.imread(str(path), aszarr=True), mode="r")
        except Exception as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ImageReadError(f"{path}: block-by-block segmentation reads TIFF and "
                                 f"OME-Zarr images ({reason})") from None
    if arr.ndim > 3 or (arr.ndim == 3 and arr.shape[-1] > 4):
        # OME-Zarr images are (T, C, Z, Y, X) at most: take a 2D (Y, X) plane.
        lead = arr.ndim - 2
        if lead and all(n == 1 for n in arr.shape[:lead]):
            return _Squeezed(arr, lead)
        raise ValueError(f"{path}: the blockwise path takes one 2D plane, got shape "
                         f"{arr.shape}")
    return arr


class _Squeezed:
    """A view of a Zarr array without its leading length-1 axes."""

    def __init__(self, arr, lead: int):
        self.arr, self.lead = arr, lead
        self.shape = tuple(arr.shape[lead:])

    def __getitem__(self, key):
        return self.arr[(0,) * self.lead + tuple(key)]


@dataclass
class BlockObjects:
    """The objects a block owns: first-pixel keys, global boxes and masks."""

    keys: np.ndarray  # int64, global flat index of each object's first pixel
    boxes: np.ndarray  # (n, 4) int64: y0, x0, y1, x1 in the image
    masks: list


def block_cores(shape: tuple[int, int], block: int) -> list[tuple[int, int, int, int]]:
    """Blocks (y0, y1, x0, x1) tiling a (Y, X) plane, in raster order."""
    h, w = shape
    return [(y, min(y + block, h), x, min(x + block, w))
            for y in range(0, h, block) for x in range(0, w, block)]


def segment_block(source: ImageSource, core, halo: int, predictor, thresholds: dict,
                  scale: float, scaling) -> BlockObjects:
    """Segment one block with its halo; the objects whose first pixel is in the block.

    ``predictor`` is a Predictor or a :class:`.models.ModelSpec` (loaded once per process).
    """
    from ..base.thresholds import Thresholds
    from ..instances.postprocess import SeededWatershed
    from .models import loaded

    predictor = loaded(predictor)
    h, w = source.shape[:2]
    y0, y1, x0, x1 = core
    ya, yb, xa, xb = max(0, y0 - halo), min(h, y1 + halo), max(0, x0 - halo), min(w, x1 + halo)
    maps = predictor.predict_plane(source.window(ya, yb, xa, xb), scale=scale, scaling=scaling)
    labels = SeededWatershed(maps, predictor.targets, overwrite_maps=True).labels(
        *Thresholds.of(thresholds).at_scale(scale))
    del maps
    keys, boxes, masks = [], [], []
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        mask = labels[box] == i
        fy, fx = box[0].start, box[1].start + int(np.argmax(mask[0]))
        gy, gx = fy + ya, fx + xa
        if y0 <= gy < y1 and x0 <= gx < x1:
            keys.append(gy * w + gx)
            boxes.append((box[0].start + ya, box[1].start + xa, box[0].stop + ya,
                          box[1].stop + xa))
            masks.append(mask)
    return BlockObjects(np.asarray(keys, np.int64), np.asarray(boxes, np.int64).reshape(-1, 4),
                        masks)


def keys_of(objects: BlockObjects) -> np.ndarray:
    return objects.keys


def paint_block(core, owners: list[BlockObjects], all_keys: np.ndarray, dtype) -> np.ndarray:
    """Labels of one block from the objects of the blocks around it (ids = key ranks)."""
    y0, y1, x0, x1 = core
    out = np.zeros((y1 - y0, x1 - x0), dtype)
    for objs in owners:
        for key, (by0, bx0, by1, bx1), mask in zip(objs.keys, objs.boxes, objs.masks):
            oy0, oy1, ox0, ox1 = max(by0, y0), min(by1, y1), max(bx0, x0), min(bx1, x1)
            if oy0 >= oy1 or ox0 >= ox1:
                continue
            m = mask[oy0 - by0:oy1 - by0, ox0 - bx0:ox1 - bx0]
            dst = out[oy0 - y0:oy1 - y0, ox0 - x0:ox1 - x0]
            # Where two owners' objects overlap by a pixel, the first painted keeps it.
            dst[m & (dst == 0)] = np.searchsorted(all_keys, key) + 1
    return out


def sample_scaling(source: ImageSource, normalization: dict):
    """The whole image's intensity scaling, as :func:`.normalize.plane_scaling` computes it.

    Arrays in memory are measured exactly as a whole-image run measures them; lazy sources
    (Zarr, TIFF) through an evenly strided subsample of about as many pixels, read chunk by
    chunk. Blocks normalized with their own percentiles would disagree along their borders
    (a 1.5 % intensity difference already changes about 1 % of the nuclei).
    """
    from ..base.normalize import _MAX_SAMPLES, plane_scaling

    data = source.data  # the whole image, also for a region: one normalization for all
    if isinstance(data, np.ndarray):
        return plane_scaling(data, normalization)
    h, w = source.full_shape[:2]
    k = max(1, int(np.ceil(np.sqrt(h * w / _MAX_SAMPLES))))
    return plane_scaling(np.asarray(data[::k, ::k]), normalization)


def plan(source: ImageSource, predictor, thresholds: dict, diameter="auto",
         halo: int | None = None):
    """What every block needs: the rescale factor, intensity scaling and halo."""
    scaling = sample_scaling(source, predictor.normalization)
    h, w = source.shape[:2]
    c = 512  # the diameter is estimated on the central 1024² (as for whole images)
    cy, cx = h // 2, w // 2
    centre = source.window(max(0, cy - c), cy + c, max(0, cx - c), cx + c)
    scale, d = predictor.plane_scale(centre, diameter, thresholds=thresholds, scaling=scaling)
    if halo is None:
        # Wider than any nucleus (4 median diameters) plus the network's context.
        halo = max(128, int(4 * d) if d else 256)
    return scale, scaling, halo, d


class LocalExecutor:
    """Runs tasks one after the other in this process (the default executor).

    ``cancel()`` is checked before each task.
    """

    def __init__(self, cancel: Callable[[], bool] | None = None):
        self.cancel = cancel

    def map(self, func, *iterables) -> list:
        from ..inference.predictor import Cancelled

        out = []
        for args in zip(*iterables):
            if self.cancel is not None and self.cancel():
                raise Cancelled("cancelled")
            out.append(func(*args))
        return out

    def results(self, handles):
        return iter(handles)


def segment_blockwise(
    image,
    predictor,
    thresholds: dict | None = None,
    *,
    block: int = DEFAULT_BLOCK,
    halo: int | None = None,
    diameter="auto",
    executor=None,
    write: Callable[[tuple, np.ndarray], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> np.ndarray | None:
    """Instance labels of a large 2D image, block by block.

    Parameters
    ----------
    image : path, array or ImageSource
        (Y, X) or (Y, X, C): an OME-Zarr image folder, a TIFF (read through Zarr, window by
        window) or an array.
    predictor : Predictor or ModelSpec
        A ModelSpec (:mod:`.models`) lets workers load the model themselves.
    thresholds : dict, optional
        The model's by default.
    block : int
        Block (and output chunk) edge in pixels.
    halo : int, optional
        Context around each block; by default 4 median nucleus diameters, at least 128.
    diameter : "auto" or float
        Estimated once, on the image's central 1024².
    executor : optional
        Where blocks run: ``map(func, *iterables) -> handles`` and ``results(handles)``
        (in order). :class:`LocalExecutor` by default; :class:`.batch.DaskExecutor` runs
        them on a Dask cluster, where the blocks' objects stay on the workers.
    write : callable, optional
        ``write(core, labels)`` receives each block's labels in raster order instead of one
        array being returned (Zarr or tiled TIFF output: bounded memory).
    progress : callable, optional
        ``progress(done, total)`` over blocks written.
    cancel : callable, optional
        Checked between blocks; True stops with :class:`.inference.Cancelled` (blocks
        already written stay).

    Returns
    -------
    ndarray or None
        The labels (uint32 unless more than 2**32 - 1 objects), or None with ``write``.
    """
    from ..base.thresholds import Thresholds
    from ..inference.predictor import Cancelled
    from .models import loaded

    source = ImageSource.of(image)
    executor = executor or LocalExecutor(cancel)
    local = loaded(predictor)
    thresholds = Thresholds.over(local.thresholds, thresholds).as_dict()
    scale, scaling, halo, _ = plan(source, local, thresholds, diameter, halo)
    shape = source.shape[:2]
    cores = block_cores(shape, block)
    n = len(cores)
    found = executor.map(segment_block, [source] * n, cores, [halo] * n, [predictor] * n,
                         [thresholds] * n, [scale] * n, [scaling] * n)
    all_keys = np.sort(np.concatenate(list(executor.results(executor.map(keys_of, found)))))
    dtype = np.uint32 if all_keys.size < 2**32 - 1 else np.uint64
    painted = executor.map(paint_block, cores, _neighbourhoods(found, shape, block),
                           [all_keys] * n, [dtype] * n)
    out = None if write is not None else np.zeros(shape, dtype)
    for k, (core, labels) in enumerate(zip(cores, executor.results(painted))):
        if cancel is not None and cancel():
            getattr(executor, "cancel", lambda _h: None)(found + painted)
            raise Cancelled("cancelled")
        if write is not None:
            write(core, labels)
        else:
            out[core[0]:core[1], core[2]:core[3]] = labels
        if progress is not None:
            progress(k + 1, n)
    return out


def _neighbourhoods(found: list, shape: tuple[int, int], block: int) -> list[list]:
    """For each block, its own objects and those of the (up to 8) blocks around it."""
    ny, nx = -(-shape[0] // block), -(-shape[1] // block)
    return [[found[j * nx + i] for j in range(max(0, by - 1), min(ny, by + 2))
             for i in range(max(0, bx - 1), min(nx, bx + 2))]
            for by, bx in (divmod(k, nx) for k in range(len(found)))]


def segment_into_zarr(image, model, *, labels_path=None, region=None,
                      block: int | None = None, diameter="auto", thresholds=None,
                      executor=None, ready: Callable | None = None,
                      progress: Callable | None = None, cancel: Callable | None = None,
                      overwrite: bool = False) -> Path:
    """Segment a large image, or a region of it, block by block into Zarr labels.

    Parameters
    ----------
    image : path or array
        An OME-Zarr image (labels go to its ``labels/unetseg`` group unless
        ``labels_path`` is given), a TIFF, or an array (then ``labels_path`` is needed).
    model : Predictor or ModelSpec
    labels_path : path, optional
        A Zarr array to write (created with the image's shape, or reused when it has it).
    region : (y0, y1, x0, x1), optional
        Only this part (the view on screen); labels elsewhere are kept.
    ready : callable, optional
        ``ready(path)`` once the labels array exists, before the first block: a viewer can
        show it filling in.
    block, diameter, thresholds, executor, progress, cancel
        As for :func:`.blockwise.segment_blockwise`.

    Returns
    -------
    Path
        The labels array's folder.
    """
    from ..io.images import is_zarr
    from ..io.writers import ZarrLabelsWriter
    from .models import loaded
    from .segmentation import SegmentationRequest, provenance, thresholds_for

    block = block or DEFAULT_BLOCK
    source = ImageSource.of(image)
    whole = source.full_shape[:2]
    zarr_image = source.path is not None and is_zarr(Path(source.path))
    if labels_path is None and not zarr_image:
        raise ValueError("labels_path is needed for images that are not OME-Zarr")
    part = source.part(region) if region is not None else source
    offset = (part.region[0], part.region[2]) if part.region is not None else (0, 0)
    t = thresholds_for(loaded(model).thresholds, thresholds, "2d")
    request = SegmentationRequest(diameter=diameter, model=str(getattr(model, "model", model)),
                                  source=Path(source.path).name if source.path else "")
    record = provenance(request, t, "2d", block=block,
                        region=list(part.region) if part.region else None)
    writer = ZarrLabelsWriter(source.path if zarr_image else None, whole, block, overwrite,
                              record, labels_path=labels_path, offset=offset,
                              keep=region is not None)
    with writer:
        if ready is not None:
            ready(writer.path)
        segment_blockwise(part, model, t.as_dict(), block=block, diameter=diameter,
                          executor=executor, write=writer.write, progress=progress,
                          cancel=cancel)
    return writer.path
