"""The large-image panel in a real viewer: an OME-Zarr opened lazily, segmented by blocks."""

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")
pytest.importorskip("napari_ome_zarr", reason="napari's OME-Zarr reader")


@pytest.fixture
def ome_zarr_image(tmp_path):
    from ome_zarr.writer import write_image

    from napari_unetseg.core.io.images import read_image
    from tests.conftest import SAMPLES

    image = np.tile(read_image(SAMPLES / "fluorescence_nuclei.png"), (3, 3))[:1500, :2000]
    path = tmp_path / "slide.zarr"
    write_image(image, zarr.open_group(str(path), mode="w"), axes="yx", scale_factors=(2,))
    return path, image


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Call to deprecated class Scaler:DeprecationWarning")
def test_large_image_segmented_into_its_own_zarr_labels_while_shown(make_napari_viewer,
                                                                    qtbot, ome_zarr_image):
    from napari_unetseg.core.inference.predictor import Predictor
    from napari_unetseg.core.run.blockwise import segment_blockwise
    from napari_unetseg.widgets.large_image import LargeImageWidget

    path, image = ome_zarr_image
    viewer = make_napari_viewer(show=True)  # drawn: the layer knows what is on screen
    viewer.open(str(path), plugin="napari-ome-zarr")
    layer = viewer.layers[0]
    assert layer.multiscale  # opened lazily, as a pyramid
    widget = LargeImageWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.image_picker.value = layer
    widget.block.value = 512
    widget.run()
    qtbot.waitUntil(lambda: widget.labels_layer is not None, timeout=60_000)
    qtbot.waitUntil(lambda: not widget.busy, timeout=300_000)
    assert "Done" in widget.status.text(), widget.status.text()
    shown = np.asarray(widget.labels_layer.data)
    stored = zarr.open_group(str(path), mode="r")["labels/unetseg/0"][:]
    assert np.array_equal(shown, stored) and shown.shape == image.shape
    expected = segment_blockwise(image, Predictor("default", "cpu"), block=512)
    assert np.array_equal(stored, expected)
    # The view on screen only: labels appear there, the rest of the file stays as it was.
    camera = getattr(viewer, "scene", viewer).camera
    camera.center = (400, 500)
    camera.zoom = 4
    qtbot.wait(500)
    from napari_unetseg.widgets.large_image import view_region

    y0, y1, x0, x1 = view_region(viewer, layer)
    assert 0 < (y1 - y0) * (x1 - x0) < image.size / 4
    zarr.open_group(str(path), mode="r+")["labels/unetseg/0"][:] = 0
    widget.region.value = "Current view"
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=300_000)
    stored = zarr.open_group(str(path), mode="r")["labels/unetseg/0"][:]
    inside = np.zeros(image.shape, bool)
    inside[max(y0, 0):y1, max(x0, 0):x1] = True
    assert stored[inside].max() > 10 and not stored[~inside].any()
