"""Batches and a large image on Dask distributed: images/s and memory per worker.

``unetseg predict``'s own code (core.batch.run_batch) on the same folder of images: in one
process, on a local cluster of 2 worker processes, and through an external scheduler with 2
workers started as separate processes (as on a real cluster, here on 127.0.0.1). Then one
generated 8192x8192 image as OME-Zarr, block by block on the local cluster: seconds, peak
memory of each worker process, and agreement with the whole-image run (AP50 of one against
the other, at the model's own nucleus size and at a size needing resampling). Prints JSON.

    python benchmarks/bench_distributed.py [--images 24] [--workers 2] [--size 8192]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
NAMES = ["fluorescence_nuclei", "tissue_stained", "brightfield_nuclei"]


def image_folder(root: Path, n: int) -> Path:
    folder = root / "images"
    folder.mkdir()
    for k in range(n):
        shutil.copy(SAMPLES / f"{NAMES[k % 3]}.png", folder / f"img{k:03d}.png")
    return folder


def timed_batch(job, files, out, *, workers: int = 1, scheduler: str | None = None) -> float:
    """Images per second, the workers started and their model loaded beforehand (a
    cluster's start-up is paid once per session, not per batch)."""
    from napari_unetseg.core.run.batch import dask_client, loaded, preload, run_batch, run_on_client

    if workers <= 1 and scheduler is None:
        loaded(job.model)
        t0 = time.perf_counter()
        records = run_batch(job, files, out)
    else:
        with dask_client(workers, scheduler) as client:
            client.wait_for_workers(workers, timeout=120)
            client.run(preload, job.model)
            t0 = time.perf_counter()
            records = run_on_client(client, job, files, out, None)
    assert all(r["status"] == "written" for r in records), records
    return round(len(files) / (time.perf_counter() - t0), 2)


def external_cluster(root: Path, workers: int):
    sched_file = root / "scheduler.json"
    common = ["--no-dashboard", "--host", "127.0.0.1"]
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler",
                               "--scheduler-file", str(sched_file), "--port", "0", *common],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    while not sched_file.exists():
        time.sleep(0.2)
    procs += [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker",
                                "--scheduler-file", str(sched_file), "--nthreads", "1",
                                "--memory-limit", "0", *common],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
              for _ in range(workers)]
    return json.loads(sched_file.read_text())["address"], procs


def ap50(a, b) -> float:
    from napari_unetseg.core.instances.metrics import overlap_ious

    n1, n2, iou = overlap_ious(a, b)
    m = int((iou > 0.5).sum())
    return round(m / (n1 + n2 - m), 4)


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def large_image(root: Path, size: int, workers: int) -> dict:
    import zarr
    from distributed import Client, LocalCluster
    from ome_zarr.writer import write_image

    from napari_unetseg.core import Predictor
    from napari_unetseg.core.io.images import read_image
    from napari_unetseg.core.run.batch import ModelSpec, PredictJob, segment_file
    from napari_unetseg.core.run.blockwise import segment_blockwise
    from napari_unetseg.core.run.pipeline import segment_image

    reps = (-(-size // 520), -(-size // 696))
    image = np.tile(read_image(SAMPLES / "fluorescence_nuclei.png"), reps)[:size, :size]
    path = root / "large.zarr"
    write_image(image, zarr.open_group(str(path), mode="w"), axes="yx", scale_factors=())
    out: dict = {"shape": list(image.shape)}
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        job = PredictJob(model=ModelSpec("default"), diameter=24.0)
        t0 = time.perf_counter()
        record = segment_file(job, path, root)
        out["seconds_cluster"] = round(time.perf_counter() - t0, 1)
        assert record["status"] == "written", record

        out["peak_rss_mb_per_worker"] = [round(v) for v in client.run(peak_rss_mb).values()]
    # The same worker process, model loaded, before any block: what the blocks add.
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        from napari_unetseg.core.run.batch import preload

        client.run(preload, ModelSpec("default"))
        out["rss_mb_worker_with_model_only"] = round(next(iter(client.run(
            peak_rss_mb).values())))
    pred = Predictor("default", "cpu")
    for d in (24.0, 20.0):
        whole = segment_image(pred, image, diameter=d)
        blocks = segment_blockwise(image, pred, block=2048, diameter=d)
        out[f"ap50_blockwise_vs_whole_diameter_{d:g}"] = ap50(whole, blocks)
    return out


def main(argv=None):
    from napari_unetseg.core.run.batch import ModelSpec, PredictJob

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", type=int, default=8192)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = sorted(image_folder(root, args.images).iterdir())
        job = PredictJob(model=ModelSpec("default"))
        result = {"images": args.images, "workers": args.workers}
        result["images_per_s_1_process"] = timed_batch(job, files, root / "o1")
        result["images_per_s_local_cluster"] = timed_batch(job, files, root / "o2",
                                                           workers=args.workers)
        address, procs = external_cluster(root, args.workers)
        try:
            result["images_per_s_external_scheduler"] = timed_batch(
                job, files, root / "o3", workers=args.workers, scheduler=address)
        finally:
            for p in procs:
                p.terminate()
        result["large_image"] = large_image(root, args.size, args.workers)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
