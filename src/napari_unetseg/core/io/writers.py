"""Label outputs written piece by piece: OME-Zarr labels, tiled TIFFs, probability maps.

Everything here is atomic or completes last: a crash leaves no file that a rerun would take
for a finished one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Labels of OME-Zarr inputs go to this group under the image's ``labels/``.
ZARR_LABELS_NAME = "unetseg"


class ZarrLabelsWriter:
    """Labels written block by block into a Zarr array: an OME-Zarr image's
    ``labels/unetseg`` group, or a plain array at ``labels_path``.

    In an OME-Zarr image the group is complete (metadata written, listed under ``labels``)
    only after the last block: an interrupted run leaves it without metadata, and a rerun
    starts it again. ``offset`` places the labels of a region of the image; with
    ``keep`` an existing array of the right shape is written into rather than replaced
    (another region's labels stay).
    """

    def __init__(self, image: Path | None, shape, block: int, overwrite: bool,
                 provenance: dict, *, labels_path: Path | None = None, offset=(0, 0),
                 keep: bool = False):
        self.image, self.shape, self.block = image and Path(image), tuple(shape), block
        self.overwrite, self.provenance = overwrite, provenance
        self.labels_path, self.offset, self.keep = labels_path, tuple(offset), keep
        self.group = None

    @property
    def path(self) -> Path:
        """Where the labels array is (the Zarr array's folder)."""
        if self.labels_path is not None:
            return Path(self.labels_path)
        return self.image / "labels" / ZARR_LABELS_NAME / "0"

    def __enter__(self):
        import zarr

        options = {"shape": self.shape, "dtype": np.uint32,
                   "chunks": (self.block, self.block)}
        if self.labels_path is not None:
            self.array = _array_to_write(zarr.open_array, str(self.labels_path), options,
                                         self.keep)
            return self
        group = zarr.open_group(str(self.image), mode="r+")
        labels = group.require_group("labels")
        if ZARR_LABELS_NAME in labels and not (self.overwrite or self.keep) and _complete(
                labels[ZARR_LABELS_NAME]):
            raise FileExistsError(f"{self.image}/labels/{ZARR_LABELS_NAME} exists")
        self.group = group
        existing = labels.get(ZARR_LABELS_NAME)
        if self.keep and existing is not None and "0" in existing and tuple(
                existing["0"].shape) == self.shape:
            self.sub, self.array = existing, existing["0"]
        else:
            self.sub = labels.require_group(ZARR_LABELS_NAME, overwrite=True)
            self.array = self.sub.create_array("0", overwrite=True, **options)
        return self

    def write(self, core, labels: np.ndarray) -> None:
        y0, y1, x0, x1 = core
        oy, ox = self.offset
        self.array[oy + y0:oy + y1, ox + x0:ox + x1] = labels.astype(np.uint32, copy=False)

    def __exit__(self, exc_type, *_):
        if exc_type is not None or self.group is None:
            return False
        from ome_zarr.writer import (
            check_group_fmt,
            write_label_metadata,
            write_multiscales_metadata,
        )

        _, fmt = check_group_fmt(self.group, None)
        write_multiscales_metadata(
            self.sub, datasets=[{"path": "0", "coordinateTransformations": [
                {"type": "scale", "scale": [1.0, 1.0]}]}], fmt=fmt, axes="yx",
            name=ZARR_LABELS_NAME, napari_unetseg=self.provenance)
        write_label_metadata(self.group["labels"], ZARR_LABELS_NAME, fmt=fmt)
        return False


def is_zarr_array(path: Path) -> bool:
    """A folder holding one Zarr array (v2 or v3 metadata)."""
    path = Path(path)
    if (path / ".zarray").is_file():
        return True
    meta = path / "zarr.json"
    if not meta.is_file():
        return False
    import json

    try:
        return json.loads(meta.read_text()).get("node_type") == "array"
    except (OSError, ValueError, AttributeError):
        return False


def _array_to_write(open_array, path: str, options: dict, keep: bool):
    # Zarr's mode "w" empties the folder first: never on anything but a Zarr array (a
    # folder typed by mistake, the working directory, an image) -- nothing is deleted.
    target = Path(path)
    if target.exists() and not is_zarr_array(target):
        raise FileExistsError(f"{target} exists and is not a Zarr labels array; choose a new "
                              "path ending in .zarr")
    if keep:
        try:
            array = open_array(path, mode="r+")
            if tuple(array.shape) == options["shape"]:
                return array
        except Exception:  # missing or not an array: made below
            pass
    return open_array(path, mode="w", **options)


def _complete(group) -> bool:
    attrs = dict(group.attrs)
    return "multiscales" in (attrs.get("ome") or attrs)


def zarr_labels_complete(image: Path) -> bool:
    """Whether an OME-Zarr image holds finished ``labels/unetseg`` (its metadata is written
    after the last block: a run killed midway leaves none)."""
    import zarr

    try:
        group = zarr.open_group(str(Path(image) / "labels" / ZARR_LABELS_NAME), mode="r")
        return _complete(group)
    except Exception:
        return False


def write_tiled_label_tiff(target: Path, shape, block: int, produce, provenance: dict,
                           overwrite: bool) -> None:
    """A label TIFF written tile by tile (BigTIFF, tiles of ``block``²): bounded memory.

    ``produce(write)`` calls ``write(core, labels)`` for every block in raster order.
    Atomic like :func:`.io.write_label_tiff`.
    """
    import queue
    import threading

    import tifffile

    from .images import LABELS_MARK

    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tiles: queue.Queue = queue.Queue(maxsize=2)
    failure: list = []

    def run():
        try:
            produce(lambda core, labels: tiles.put(_padded(labels, block)))
        except BaseException as exc:  # handed over to the writing thread below
            failure.append(exc)
        finally:
            tiles.put(None)

    def consume():
        while (tile := tiles.get()) is not None:
            yield tile

    producer = threading.Thread(target=run, daemon=True)
    producer.start()
    try:
        tifffile.imwrite(tmp, data=consume(), shape=tuple(shape), dtype=np.uint32,
                         tile=(block, block), bigtiff=True, compression="zlib",
                         software=LABELS_MARK, metadata={
                             "axes": "YX", "napari_unetseg": provenance})
        producer.join()
        if failure:
            raise failure[0]
        tmp.replace(target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _padded(labels: np.ndarray, block: int) -> np.ndarray:
    h, w = labels.shape
    if (h, w) == (block, block):
        return labels.astype(np.uint32, copy=False)
    out = np.zeros((block, block), np.uint32)
    out[:h, :w] = labels
    return out


def write_maps(path: Path, maps, axes: str, overwrite: bool) -> None:
    """Probability maps as a float32 ImageJ hyperstack (channels = target maps)."""
    import tifffile

    if path.exists() and not overwrite:
        return
    # ImageJ wants TZCYX order: move the channel axis just before Y.
    data = np.moveaxis(maps, 0, -3)
    ij_axes = axes[:-2] + "CYX"
    # Atomic: a full disk or Ctrl-C leaves no truncated file that a rerun would skip.
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tifffile.imwrite(tmp, data.astype(np.float32), imagej=True,
                         metadata={"axes": ij_axes}, compression="zlib")
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()


