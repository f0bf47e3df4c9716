import warnings

import numpy as np
import pytest
import tifffile

from napari_unetseg.core.io import (
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
