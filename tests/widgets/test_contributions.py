"""Manifest, sample data, reader and writer as napari uses them."""

import shutil
import subprocess

import numpy as np
import pytest
import tifffile


def test_manifest_validates():
    npe2 = shutil.which("npe2")
    if npe2 is None:
        pytest.skip("npe2 command not installed")
    out = subprocess.run([npe2, "validate", "napari-unetseg"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_installed_package_holds_real_copies_of_the_manifest_and_samples():
    """The build copies them (setup.py): no symlinks, and no stale copy after an edit."""
    from importlib.resources import files
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    package = files("napari_unetseg")
    for name in ("napari.yaml", "sample_data/fluorescence_nuclei.png",
                 "sample_data/labels/tissue_stained.tif"):
        shipped = Path(str(package / name))
        assert shipped.is_file() and not shipped.is_symlink(), name
        assert shipped.read_bytes() == (root / name).read_bytes(), (
            f"{name} in the package differs from the repository's: reinstall (pip install -e .)")


def test_samples_open_from_the_menu(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-unetseg", "fluorescence_nuclei_labels")
    image, labels = viewer.layers
    assert image.data.shape == (520, 696) and labels.data.max() == 258
    viewer.open_sample("napari-unetseg", "tissue_stained")
    assert viewer.layers[-1].rgb


def test_writer_and_reader_round_trip_a_stack(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    data = np.random.default_rng(0).integers(0, 40, (3, 32, 48)).astype(np.uint32)
    layer = viewer.add_labels(data, name="cells", metadata={"unetseg_axes": "TYX"})
    path = tmp_path / "cells.tif"
    layer.save(str(path), plugin="napari-unetseg")
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej and tif.series[0].axes == "TYX"
    layers = viewer.open(str(path), plugin="napari-unetseg")
    assert len(layers) == 1 and np.array_equal(layers[0].data, data)


def test_reader_declines_other_files(tmp_path):
    from napari_unetseg.widgets.contributions import get_label_tiff_reader

    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((4, 4), np.uint8))
    (tmp_path / "junk.tif").write_text("junk")
    assert get_label_tiff_reader(str(tmp_path / "plain.tif")) is None
    assert get_label_tiff_reader(str(tmp_path / "junk.tif")) is None
    assert get_label_tiff_reader(str(tmp_path / "missing.tif")) is None
    assert get_label_tiff_reader([str(tmp_path / "plain.tif")]) is None
