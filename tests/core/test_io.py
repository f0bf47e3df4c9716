import warnings

import numpy as np
import pytest
import tifffile

from napari_unetseg.core.io.images import (
    ImageReadError,
    LabelTiffWarning,
    read_image,
    read_image_with_axes,
    read_label_tiff,
    write_label_tiff,
)


@pytest.mark.parametrize("shape,axes", [((30, 40), "YX"), ((3, 30, 40), "ZYX"),
                                        ((3, 30, 40), "TYX"), ((2, 3, 30, 40), "TZYX")])
def test_label_stack_round_trip_with_imagej_axes(tmp_path, shape, axes):
    labels = np.random.default_rng(0).integers(0, 500, shape).astype(np.int32)
    path = write_label_tiff(tmp_path / "l.tif", labels, axes=axes, provenance={"model": "m"})
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        assert tif.series[0].axes == axes
        assert len(tif.pages) == int(np.prod(shape[:-2]))
        assert tif.pages.first.dtype == np.uint16
        assert tif.imagej_metadata["max"] == labels.max()
        assert tif.pages.first.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
    back, back_axes, prov = read_label_tiff(path)
    assert np.array_equal(back, labels) and back_axes == axes and prov == {"model": "m"}


def test_uint32_with_warning_and_no_silent_overwrite(tmp_path):
    labels = np.zeros((2, 10, 10), np.int64)
    labels[0, 0, 0] = 70_000
    with pytest.warns(LabelTiffWarning, match="ImageJ"):
        path = write_label_tiff(tmp_path / "big.tif", labels, axes="TYX")
    back, axes, _ = read_label_tiff(path)
    assert back.dtype == np.uint32 and np.array_equal(back, labels) and axes == "TYX"
    with pytest.raises(FileExistsError, match="exists"):
        write_label_tiff(path, labels[:, :5])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_label_tiff(path, labels * 0, overwrite=True)
    assert read_label_tiff(path)[0].max() == 0


def test_readers_and_clear_errors(tmp_path):
    data = np.arange(2 * 3 * 20 * 30, dtype=np.uint16).reshape(2, 3, 20, 30)
    tifffile.imwrite(tmp_path / "hyper.tif", data, imagej=True, metadata={"axes": "TZYX"})
    arr, axes = read_image_with_axes(tmp_path / "hyper.tif")
    assert axes == "TZYX" and np.array_equal(arr, data)
    # OME-TIFF with channels first: reordered to channels last.
    ome = np.zeros((3, 20, 30), np.uint8)
    tifffile.imwrite(tmp_path / "c.ome.tif", ome, ome=True, metadata={"axes": "CYX"})
    arr, axes = read_image_with_axes(tmp_path / "c.ome.tif")
    assert axes == "YXC" and arr.shape == (20, 30, 3)
    (tmp_path / "x.png").write_text("not an image")
    with pytest.raises(ImageReadError, match=r"x\.png: not a readable image"):
        read_image(tmp_path / "x.png")
    with pytest.raises(ImageReadError, match="file not found"):
        read_image(tmp_path / "missing.tif")


def test_voxel_size_is_written_for_fiji_and_read_back_from_imagej_and_ome(tmp_path):
    from napari_unetseg.core.io.images import read_label_tiff, read_voxel_size

    labels = np.zeros((2, 5, 16, 16), np.uint16)
    labels[0, 1:3, 2:5, 2:5] = 1
    write_label_tiff(tmp_path / "a.tif", labels, axes="TZYX", voxel_size=(2.0, 0.5, 0.25))
    with tifffile.TiffFile(tmp_path / "a.tif") as tif:
        ij = tif.imagej_metadata
        assert tif.series[0].axes == "TZYX" and ij["spacing"] == 2.0 and ij["unit"] == "micron"
    assert read_voxel_size(tmp_path / "a.tif") == (2.0, 0.5, 0.25)
    big = labels.astype(np.uint32)
    big[1, 0, 0, 0] = 70_000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_label_tiff(tmp_path / "b.tif", big, axes="TZYX", voxel_size=(2.0, 0.5, 0.25))
    assert read_voxel_size(tmp_path / "b.tif") == (2.0, 0.5, 0.25)
    assert read_label_tiff(tmp_path / "b.tif")[1] == "TZYX"
    tifffile.imwrite(tmp_path / "c.ome.tif", np.zeros((4, 8, 8), np.uint8), ome=True,
                     metadata={"axes": "ZYX", "PhysicalSizeX": 0.3, "PhysicalSizeY": 0.3,
                               "PhysicalSizeZ": 1.5, "PhysicalSizeZUnit": "nm"})
    assert read_voxel_size(tmp_path / "c.ome.tif") == pytest.approx((0.0015, 0.3, 0.3))
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((4, 8, 8), np.uint8),
                     photometric="minisblack")
    assert read_voxel_size(tmp_path / "plain.tif") is None
    with pytest.raises(ValueError, match="voxel size"):
        write_label_tiff(tmp_path / "d.tif", labels, axes="TZYX", voxel_size=(0, 1, 1))


def test_3d_objects_get_one_csv_row_with_volume_and_centroid(tmp_path):
    import csv

    from napari_unetseg.core.io.export import export_labels, object_table

    labels = np.zeros((2, 6, 20, 20), np.uint16)
    labels[0, 1:4, 2:6, 2:7] = 1  # 3 x 4 x 5 = 60 voxels
    labels[1, 2:4, 10:12, 10:12] = 2
    rows = object_table(labels, axes="TZYX", voxel_size=(2.0, 0.5, 0.5), name="cells")
    assert [(r["frame"], r["label"], r["volume_voxels"]) for r in rows] == [
        (0, 1, 60), (1, 2, 8)]
    assert rows[0]["volume_um3"] == 60 * 0.5 and rows[0]["centroid_z"] == 2.0
    # Planes segmented on their own keep per-plane rows.
    assert len(object_table(labels, axes="TZYX", per_plane=True)) == 3 + 2
    tif, table = export_labels(tmp_path / "cells.tif", labels[0], axes="ZYX",
                               voxel_size=(2.0, 0.5, 0.5))
    with open(table) as f:
        (row,) = list(csv.DictReader(f))
    assert row["volume_um3"] == "30.0" and row["frame"] == "" and "plane" not in row


@pytest.mark.parametrize("big", [False, True])  # ImageJ (uint16) and plain (uint32) files
def test_the_provenance_is_read_without_the_pixels(tmp_path, monkeypatch, big):
    from napari_unetseg.core.io import images

    labels = np.zeros((4, 8, 8), np.uint32)
    labels[0, 0, 0] = 70_000 if big else 7
    record = {"model": "m.pt", "edited_by_hand": True, "thresholds": {"min_size": 8}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        images.write_label_tiff(tmp_path / "l.tif", labels, provenance=record)
    assert images.read_label_tiff(tmp_path / "l.tif")[2] == record

    def no_pixels(*_a, **_k):
        raise AssertionError("the pixels were read")

    monkeypatch.setattr(images, "read_image_with_axes", no_pixels)
    monkeypatch.setattr("tifffile.TiffFile.asarray", no_pixels)
    assert images.read_label_provenance(tmp_path / "l.tif") == record
