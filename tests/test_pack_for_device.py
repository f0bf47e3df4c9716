"""benchmarks/pack_for_device.py: what a GPU machine unpacks is the training set, unchanged."""

import json
import shutil
import subprocess
import sys

import numpy as np

from napari_unetseg.core.io.images import read_image, read_labels
from tests.conftest import ROOT, SAMPLES


def test_packed_images_and_labels_unpack_pixel_for_pixel(tmp_path):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    names = ["fluorescence_nuclei", "tissue_stained", "brightfield_nuclei"]
    for name in names:
        shutil.copy(SAMPLES / f"{name}.png", data / "images" / f"{name}.png")
        shutil.copy(SAMPLES / "labels" / f"{name}.tif", data / "labels" / f"{name}.tif")
    (data / "val.txt").write_text("tissue_stained\n")
    script = str(ROOT / "benchmarks" / "pack_for_device.py")
    pack = subprocess.run([sys.executable, script, "--data", str(data), "--out",
                           str(tmp_path / "pack"), "--encoders"], capture_output=True,
                          text=True, timeout=300)
    assert pack.returncode == 0, pack.stderr[-1000:]
    assert json.loads(pack.stdout)["data"]["images"] == 3
    out = tmp_path / "unpacked"
    unpack = subprocess.run([sys.executable, script, "--unpack",
                             str(tmp_path / "pack" / "data.tar"), str(out)],
                            capture_output=True, text=True, timeout=300)
    assert unpack.returncode == 0, unpack.stderr[-1000:]
    assert (out / "val.txt").read_text() == "tissue_stained\n"
    for name in names:
        original = read_image(data / "images" / f"{name}.png")
        original = original[..., :3] if original.ndim == 3 else original
        back = read_image(out / "images" / f"{name}.png")
        if back.ndim == 2:  # gray images come back as one channel
            assert original.ndim == 2 or (original == original[..., :1]).all()
            original = original if original.ndim == 2 else original[..., 0]
        assert np.array_equal(back, original), name
        assert np.array_equal(read_labels(out / "labels" / f"{name}.tif"),
                              read_labels(data / "labels" / f"{name}.tif"))
