"""Batches on Dask distributed, and images segmented block by block."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_unetseg.core.instances.metrics import overlap_ious
from tests.conftest import SAMPLES

distributed = pytest.importorskip("distributed", reason="the 'distributed' extra")


def start(args, log):
    return subprocess.Popen([sys.executable, "-m", *args], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


@pytest.fixture
def cluster(tmp_path):
    """A real scheduler and two one-thread workers, separate processes on 127.0.0.1."""
    sched_file = tmp_path / "scheduler.json"
    log = open(tmp_path / "cluster.log", "w")
    common = ["--no-dashboard", "--host", "127.0.0.1"]
    procs = [start(["distributed.cli.dask_scheduler", "--scheduler-file", str(sched_file),
                    "--port", "0", *common], log)]
    deadline = time.time() + 60
    while not sched_file.exists() and time.time() < deadline:
        time.sleep(0.2)
    workers = [start(["distributed.cli.dask_worker", "--scheduler-file", str(sched_file),
                      "--nthreads", "1", "--nworkers", "1", "--death-timeout", "60",
                      "--memory-limit", "0", *common], log) for _ in range(2)]
    procs += workers
    address = json.loads(sched_file.read_text())["address"]
    with distributed.Client(address, timeout="60s") as client:
        client.wait_for_workers(2, timeout=120)
    yield address, workers
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
    log.close()


def unetseg(*args):
    return subprocess.run([sys.executable, "-m", "napari_unetseg.cli", *map(str, args)],
                          capture_output=True, text=True)


def folder_of_images(folder, n):
    folder.mkdir()
    names = ["fluorescence_nuclei", "tissue_stained", "brightfield_nuclei"]
    for k in range(n):
        shutil.copy(SAMPLES / f"{names[k % 3]}.png", folder / f"img{k:02d}.png")
    return folder


def outputs(folder):
    return {p.name: tifffile.imread(p) for p in sorted(folder.iterdir())}


@pytest.mark.slow
def test_predict_on_a_scheduler_gives_the_files_of_a_local_run(cluster, tmp_path,
                                                               tiny_model_path):
    address, _ = cluster
    images = folder_of_images(tmp_path / "images", 6)
    local = unetseg("predict", images, "--out", tmp_path / "local", "--model",
                    tiny_model_path, "--quiet")
    assert local.returncode == 0, local.stderr
    remote = unetseg("predict", images, "--out", tmp_path / "remote", "--model",
                     tiny_model_path, "--quiet", "--scheduler", address)
    assert remote.returncode == 0, remote.stderr
    a, b = outputs(tmp_path / "local"), outputs(tmp_path / "remote")
    assert list(a) == list(b) == [f"img{k:02d}.tif" for k in range(6)]
    assert all(np.array_equal(a[n], b[n]) for n in a)
    # A rerun skips everything: nothing is rewritten.
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "remote").iterdir()}
    again = unetseg("predict", images, "--out", tmp_path / "remote", "--model",
                    tiny_model_path, "--quiet", "--scheduler", address)
    assert again.returncode == 0 and again.stderr.count("skipped ") == 6  # one line per image
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "remote").iterdir()}


@pytest.mark.slow
def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(cluster, tmp_path):
    address, workers = cluster
    images = folder_of_images(tmp_path / "images", 12)
    out = tmp_path / "out"
    run = subprocess.Popen([sys.executable, "-m", "napari_unetseg.cli", "predict", str(images),
                            "--out", str(out), "--quiet", "--scheduler", address],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (out.exists() and any(out.glob("*.tif"))) and time.time() < deadline:
        time.sleep(0.2)
    assert workers[0].poll() is None and len(list(out.glob("*.tif"))) < 12
    workers[0].send_signal(signal.SIGKILL)  # mid-batch: most images are still to do
    stdout, stderr = run.communicate(timeout=600)
    assert run.returncode == 0, stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"img{k:02d}.tif" for k in range(12)]  # no temporary files left
    local = unetseg("predict", images, "--out", tmp_path / "local", "--quiet")
    assert local.returncode == 0, local.stderr
    a, b = outputs(out), outputs(tmp_path / "local")
    assert all(np.array_equal(a[n], b[n]) for n in a)


@pytest.mark.slow
def test_an_8192_image_blockwise_matches_the_whole_image_run(tmp_path):
    from napari_unetseg.core import Predictor
    from napari_unetseg.core.io.images import read_image
    from napari_unetseg.core.run.blockwise import segment_blockwise
    from napari_unetseg.core.run.pipeline import segment_image

    # The model's own nucleus size (no resampling): what is compared is the stitching. At
    # other sizes each block's resampling adds its own rounding (bench_distributed.py).
    tile = read_image(SAMPLES / "fluorescence_nuclei.png")
    image = np.tile(tile, (16, 12))[:8192, :8192]
    pred = Predictor("default", "cpu")
    whole = segment_image(pred, image, diameter=pred.diameter)
    blocks = segment_blockwise(image, pred, block=2048, diameter=pred.diameter)
    assert blocks.shape == whole.shape and blocks.max() > 40_000
    n_whole, n_blocks, iou = overlap_ious(whole, blocks)
    matched = int((iou > 0.5).sum())
    ap50 = matched / (n_whole + n_blocks - matched)
    assert ap50 >= 0.98, ap50
    # No object split at a block border: every nucleus of the whole-image run that crosses
    # a border line is (nearly all) one object of the blockwise result.
    from scipy import ndimage as ndi

    boxes = ndi.find_objects(whole)
    for line in (2048, 4096, 6144):
        for axis in (0, 1):
            a, b = np.take(whole, line - 1, axis), np.take(whole, line, axis)
            crossing = np.unique(a[(a > 0) & (a == b)])
            assert crossing.size > 20
            for i in crossing:
                box = boxes[i - 1]
                _, counts = np.unique(blocks[box][whole[box] == i], return_counts=True)
                assert counts.max() >= 0.9 * counts.sum(), (line, axis, i)


@pytest.mark.filterwarnings("ignore:Call to deprecated class Scaler:DeprecationWarning")
def test_ome_zarr_and_tiff_inputs_blockwise_from_the_command_line(tmp_path):
    # An OME-Zarr image gets its labels in its own labels/ group (OME-Zarr spec), a TIFF a
    # tiled label TIFF; both block by block, equal to each other, and a rerun skips them.
    zarr = pytest.importorskip("zarr")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr.writer import write_image

    from napari_unetseg.core.io.images import is_label_tiff, read_image, read_label_tiff

    image = np.tile(read_image(SAMPLES / "fluorescence_nuclei.png"), (3, 3))[:1500, :2000]
    write_image(image, zarr.open_group(str(tmp_path / "big.zarr"), mode="w"), axes="yx",
                scale_factors=(2,))
    tifffile.imwrite(tmp_path / "big.tif", image)
    r = unetseg("predict", tmp_path / "big.zarr", tmp_path / "big.tif", "--out",
                tmp_path / "out", "--block", "512", "--diameter", "24", "--quiet")
    assert r.returncode == 0, r.stderr
    nodes = list(Reader(parse_url(str(tmp_path / "big.zarr")))())
    label_node = next(n for n in nodes if "labels/unetseg" in str(n))
    from_zarr = np.asarray(label_node.data[0])
    assert from_zarr.shape == image.shape and from_zarr.max() > 1000
    assert is_label_tiff(tmp_path / "out" / "big.tif")
    from_tiff, axes, prov = read_label_tiff(tmp_path / "out" / "big.tif")
    assert axes == "YX" and prov["block"] == 512
    assert np.array_equal(from_tiff, from_zarr)
    again = unetseg("predict", tmp_path / "big.zarr", tmp_path / "big.tif", "--out",
                    tmp_path / "out", "--block", "512", "--quiet")
    assert again.returncode == 0 and again.stderr.count("skipped ") == 2  # one line per image


def test_a_write_error_names_the_file_that_failed():
    from napari_unetseg.core.run.batch import _written_name

    err = OSError(28, "No space left on device")
    err.filename = "/out/.img_maps.tif.tmp"
    assert str(_written_name(err, Path("/out/img.tif"))) == "/out/img_maps.tif"
    assert _written_name(OSError(28, "full"), Path("/out/img.tif")) == Path("/out/img.tif")
