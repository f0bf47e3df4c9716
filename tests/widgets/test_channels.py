"""Two-channel images (a nuclear stain and another): the nuclear channel is segmented in 2D."""

import numpy as np
import pytest
import tifffile

from napari_unetseg.core.io.images import read_image
from tests.conftest import SAMPLES


@pytest.fixture
def two_channel_tiff(tmp_path):
    """An ImageJ CYX TIFF: channel 1 the nuclei, channel 2 a dim, inverted other stain."""
    nuclei = read_image(SAMPLES / "fluorescence_nuclei.png")
    nuclei = nuclei[..., 0] if nuclei.ndim == 3 else nuclei
    other = ((255 - nuclei.astype(np.int32)) // 4).astype(np.uint8)
    path = tmp_path / "two_channels.tif"
    tifffile.imwrite(path, np.stack([nuclei, other]), imagej=True, metadata={"axes": "CYX"})
    return path


def test_the_panel_reads_the_channel_axis_and_segments_the_chosen_channel(
        make_napari_viewer, qtbot, two_channel_tiff):
    viewer = make_napari_viewer()
    viewer.open(str(two_channel_tiff), plugin="napari")  # napari's reader: a (2, Y, X) stack
    seg = viewer.window.add_plugin_dock_widget("napari-unetseg", "Segment nuclei (U-Net)")[1]
    qtbot.waitUntil(lambda: seg.model_panel.predictor is not None, timeout=120_000)
    form = seg.form
    assert form.channel_axis.value == 0 and form.channel.max == 2  # from the ImageJ metadata
    assert not form.stack_mode.visible  # one channel is one 2D plane, not a Z-stack
    form.channel.value = 1
    seg.run()
    qtbot.waitUntil(lambda: not seg.busy, timeout=120_000)
    labels = viewer.layers["two_channels labels"]
    assert labels.data.shape == (520, 696)
    assert labels.metadata["unetseg_provenance"]["channel"] == 1
    assert labels.data.max() > 150  # the sample has 258 nuclei


def test_a_short_stack_without_metadata_warns_that_it_may_be_channels(make_napari_viewer):
    from napari_unetseg.widgets.segment import SegmentWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((2, 64, 64), np.uint8), name="maybe channels")
    seg = SegmentWidget(viewer, autoload=False)
    seg.form.image_picker.value = viewer.layers["maybe channels"]
    assert seg.form.channel_axis.value is None
    assert "channels" in seg.form.channel_warning.value
    assert not seg.form.channel_warning.native.isHidden()
    seg.form.channel_axis.value = 0
    assert seg.form.channel_warning.native.isHidden()
    assert seg.form.view().label_shape == (64, 64)
