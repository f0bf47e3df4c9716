"""Segmenting many files: one process, a local Dask cluster or an existing one.

One function, :func:`segment_file`, does everything ``unetseg predict`` does to one input
(read, segment in the chosen mode, link ids, write atomically), whether it runs in this
process or as a task on a Dask worker. Each worker process loads a model once and keeps it
(:func:`loaded`). Existing outputs are skipped, so a rerun after a crash finishes the job,
and outputs appear whole or not at all, so a task retried after its worker died writes no
duplicate and leaves no half-written file. Dask distributed does the scheduling; this module
only says what a task is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io.images import is_zarr
from ..io.writers import ZARR_LABELS_NAME, ZarrLabelsWriter, write_maps, write_tiled_label_tiff
from .models import ModelSpec, loaded, preload

#: TIFF inputs larger than this (uncompressed) are segmented block by block from the file.
LARGE_IMAGE_BYTES = 2 * 2**30


class OutputError(OSError):
    """An output could not be written (disk full, permissions): later ones would fail too."""


@dataclass(frozen=True)
class PredictJob:
    """What ``unetseg predict`` does to every input (its command-line options)."""

    model: ModelSpec = field(default_factory=ModelSpec)
    thresholds: dict = field(default_factory=dict)  # overrides of the model's (serialized)
    axes: str | None = None
    tile: int = 2048
    tta: bool = False
    diameter: object = "auto"
    mode: str = "auto"
    stitch_iou: float = 0.25
    track: bool = False
    voxel_size: tuple | None = None
    save_maps: bool = False
    overwrite: bool = False
    block: int | None = None  # segment 2D images block by block with this block size
    channel: int | None = None  # 1-based channel to segment in multi-channel images


def output_of(path: Path, out_dir: Path) -> Path:
    """Where the labels of one input go: ``<out>/<stem>.tif``, or the labels group of an
    OME-Zarr image."""
    if is_zarr(path):
        return path / "labels" / ZARR_LABELS_NAME
    return out_dir / f"{path.stem}.tif"


def segment_file(job: PredictJob, path, out_dir, progress: Callable | None = None) -> dict:
    """Segment one input and write its labels; a record of what happened.

    Returns ``{"image", "output", "status", "message", "seconds"}`` with status
    ``written``, ``skipped`` (output exists; ``overwrite`` not set) or ``failed`` (the
    input could not be read or segmented: the message says why). Errors writing the output
    raise :class:`OutputError`.
    """
    from ..io import images as io

    path, out_dir = Path(path), Path(out_dir)
    target = output_of(path, out_dir)
    record = {"image": str(path), "output": str(target), "status": "written", "message": "",
              "seconds": 0.0}
    if finished(job, path, out_dir):
        if not job.overwrite:
            return dict(record, status="skipped", message=f"{target} exists (use --overwrite)")
        if not is_zarr(path) and not io.is_label_tiff(target):
            # --overwrite replaces label files only, never an image or anything else.
            return dict(record, status="failed", message=f"{target} exists and is not a label "
                        "file written by unetseg; not replaced")
    t0 = time.perf_counter()
    try:
        if is_large(path, job):
            _segment_large(job, path, target, progress)
        else:
            _segment_in_memory(job, path, target, out_dir, progress)
    except (io.ImageReadError, ValueError) as exc:
        where = "" if str(exc).startswith(str(path)) else f"{path}: "
        return dict(record, status="failed", message=f"{where}{exc}")
    except OSError as exc:
        raise OutputError(f"cannot write {_written_name(exc, target)}: "
                          f"{exc.strerror or exc}") from None
    return dict(record, seconds=round(time.perf_counter() - t0, 2))


def _written_name(exc: OSError, target: Path) -> Path:
    """The file a write error is about (the maps, say, not the labels), without the
    temporary name it was being written under."""
    if not exc.filename:
        return target
    name = Path(exc.filename)
    clean = name.name[1:] if name.name.startswith(".") else name.name
    return name.with_name(clean.removesuffix(".tmp"))


def maps_path(path: Path, out_dir: Path) -> Path:
    """Where ``--save-maps`` writes the maps of one input."""
    return Path(out_dir) / f"{Path(path).stem}_maps.tif"


def finished(job: PredictJob, path: Path, out_dir: Path) -> bool:
    """Whether everything ``job`` writes for ``path`` is there and complete (a rerun after
    a crash or Ctrl+C redoes the rest: unfinished Zarr labels, maps not yet written)."""
    from ..io.writers import zarr_labels_complete

    if is_zarr(path):
        return zarr_labels_complete(path)
    target = output_of(path, out_dir)
    if not target.exists():
        return False
    return not job.save_maps or maps_path(path, out_dir).exists()


def _request(job: PredictJob, path: Path, axes: str | None, voxel):
    from .segmentation import SegmentationRequest

    return SegmentationRequest(
        axes=axes, mode=job.mode, diameter=job.diameter, thresholds=job.thresholds,
        track=job.track, stitch_iou=job.stitch_iou, voxel_size=voxel, tile=job.tile,
        tta=job.tta, keep_maps=job.save_maps, model=str(job.model.model), source=path.name,
        channel=job.channel)


def _segment_in_memory(job: PredictJob, path: Path, target: Path, out_dir: Path,
                       progress) -> None:
    from ..io import images as io
    from .segmentation import segment

    predictor = loaded(job.model)
    image, file_axes = io.read_image_with_axes(path)
    axes = job.axes or file_axes
    if job.channel is not None:
        from ..inference.predictor import guess_axes

        image, axes = io.select_channel(image, axes or guess_axes(image.shape), job.channel - 1)
    voxel = job.voxel_size or io.read_voxel_size(path)
    result = segment(predictor, image, _request(job, path, axes, voxel), progress=progress)
    del image
    # Labels of an earlier run whose maps were never written are this run's to replace.
    io.write_label_tiff(target, result.labels, axes=result.axes,
                        overwrite=job.overwrite or (target.exists() and io.is_label_tiff(target)),
                        provenance=result.provenance, voxel_size=voxel)
    if job.save_maps:
        write_maps(maps_path(path, out_dir), result.map_array(predictor.n_outputs),
                   result.axes, job.overwrite)


def _too_large(path: Path) -> bool:
    """A TIFF whose pixels would not comfortably fit in memory."""
    if path.suffix.lower() not in (".tif", ".tiff"):
        return False
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            return int(np.prod(series.shape)) * series.dtype.itemsize > LARGE_IMAGE_BYTES
    except Exception:
        return False  # the normal path reports unreadable files


def _segment_large(job: PredictJob, path: Path, target: Path, progress) -> None:
    from .blockwise import DEFAULT_BLOCK, ImageSource, segment_blockwise
    from .segmentation import provenance, thresholds_for

    predictor = loaded(job.model)
    source = ImageSource.of(path)
    if len(source.shape) not in (2, 3) or (len(source.shape) == 3 and source.shape[-1] > 4):
        raise ValueError(f"blockwise segmentation takes one 2D plane (Y, X[, C]), got shape "
                         f"{source.shape}")
    request = _request(job, path, None, job.voxel_size)
    t = thresholds_for(predictor.thresholds, request.thresholds, "2d")
    thresholds = t.as_dict()
    block = job.block or DEFAULT_BLOCK
    record = provenance(request, t, "2d", block=block)
    executor = _current_executor()
    if is_zarr(path):
        with ZarrLabelsWriter(path, source.shape[:2], block, job.overwrite,
                              record) as writer:
            segment_blockwise(source, job.model, thresholds, block=block,
                              diameter=job.diameter, executor=executor, write=writer.write,
                              progress=progress)
    else:
        write_tiled_label_tiff(target, source.shape[:2], block, lambda write: segment_blockwise(
            source, job.model, thresholds, block=block, diameter=job.diameter,
            executor=executor, write=write, progress=progress), record, job.overwrite)


def _current_executor():
    """A DaskExecutor when this process drives a Dask cluster (the blocks of a large image
    are then spread over it), else None: one block after the other, as inside a task."""
    try:
        from distributed import default_client, get_worker
    except ImportError:
        return None
    try:
        get_worker()
        return None  # a task on a worker: never wait on other tasks from inside one
    except ValueError:
        pass
    try:
        return DaskExecutor(default_client())
    except ValueError:
        return None


class DaskExecutor:
    """Runs tasks on a Dask cluster; results stay on the workers until asked for."""

    def __init__(self, client):
        self.client = client

    def map(self, func, *iterables) -> list:
        return self.client.map(func, *iterables, pure=False, retries=2)

    def results(self, handles):
        for future in handles:
            yield future.result()

    def cancel(self, handles) -> None:
        self.client.cancel(list(handles))


def run_batch(job: PredictJob, files: list, out_dir, *, workers: int = 1,
              scheduler: str | None = None, progress: Callable[[dict, int, int], None] | None
              = None, tile_progress: Callable | None = None) -> list[dict]:
    """Segment ``files`` into ``out_dir``: here, on a local cluster, or on a scheduler.

    Parameters
    ----------
    job : PredictJob
    files : list of paths
    out_dir : path
    workers : int
        More than 1 starts a local Dask cluster with that many worker processes.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); its workers do the work.
    progress : callable, optional
        ``progress(record, done, total)`` as each input finishes (in completion order).
    tile_progress : callable, optional
        ``tile_progress(path)`` returns a per-image progress callback (this process only).

    Returns
    -------
    list of dict
        One record per input (see :func:`segment_file`), in the order of ``files``.
    """
    files = [Path(f) for f in files]
    if scheduler is None and workers <= 1:
        records = []
        for k, f in enumerate(files):
            records.append(segment_file(job, f, out_dir,
                                        tile_progress(f) if tile_progress else None))
            if progress is not None:
                progress(records[-1], k + 1, len(files))
        return records
    with dask_client(workers, scheduler) as client:
        return run_on_client(client, job, files, out_dir, progress)


def dask_client(workers: int, scheduler: str | None):
    """A Dask client for ``scheduler``, or for a new local cluster of ``workers`` processes
    (closed with the client); use it as a context manager."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ValueError("several workers or a Dask scheduler need Dask distributed: "
                         "pip install 'napari-unetseg[distributed]'") from None
    if scheduler is not None:
        try:
            return Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler} ({reason[:120]});"
                             " is it running, and is the address right?") from None
    # One thread per worker process: ONNX Runtime and torch use the cores themselves.
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    return _OwningClient(Client(cluster), cluster)


class _OwningClient:
    """A client that closes the local cluster it was made for."""

    def __init__(self, client, cluster):
        self.client, self.cluster = client, cluster

    def __enter__(self):
        return self.client

    def __exit__(self, *exc):
        self.client.close()
        self.cluster.close()
        return False


def is_large(path: Path, job: PredictJob) -> bool:
    """Segmented block by block (the blocks, not the file, are the tasks)."""
    return is_zarr(path) or bool(job.block) or _too_large(path)


def run_on_client(client, job: PredictJob, files: list[Path], out_dir,
                  progress=None) -> list[dict]:
    """:func:`run_batch` on an existing Dask client (see its parameters)."""
    from distributed import as_completed

    records: list = [None] * len(files)
    small = [i for i, f in enumerate(files) if not is_large(f, job)]
    # Each small input is one task; a task whose worker dies is run again elsewhere
    # (retries), which is safe because outputs are skipped once complete and written
    # atomically.
    futures = client.map(segment_file, [job] * len(small), [files[i] for i in small],
                         [str(out_dir)] * len(small), pure=False, retries=3)
    index = {f.key: i for f, i in zip(futures, small)}
    done, small = 0, set(small)
    for i, f in enumerate(files):  # large images: their blocks are the tasks
        if i not in small:
            records[i] = segment_file(job, f, out_dir)
            done += 1
            if progress is not None:
                progress(records[i], done, len(files))
    for future in as_completed(futures):
        done += 1
        try:
            record = future.result()
        except OutputError:
            client.cancel(futures)
            raise
        except Exception as exc:  # the task itself failed after its retries
            record = {"image": str(files[index[future.key]]), "output": "", "status": "failed",
                      "message": f"{files[index[future.key]]}: {exc}", "seconds": 0.0}
        records[index[future.key]] = record
        if progress is not None:
            progress(record, done, len(files))
    return records


__all__ = ["DaskExecutor", "ModelSpec", "OutputError", "PredictJob", "loaded", "preload",
           "run_batch", "segment_file"]
