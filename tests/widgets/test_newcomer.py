"""What a new user meets first: panels that fit a laptop screen, sliders that do not jump,
edits that survive closing the window."""

import shutil

import numpy as np
import tifffile

from napari_unetseg.widgets.browse import BrowseWidget
from napari_unetseg.widgets.common import MAX_PANEL_WIDTH
from napari_unetseg.widgets.segment import SegmentWidget
from tests.conftest import SAMPLES

PANELS = ("Segment nuclei (U-Net)", "Edit labels", "Browse folder and export",
          "Train on corrected labels")


def test_panels_fit_beside_the_canvas_on_a_laptop_screen(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widgets = [viewer.window.add_plugin_dock_widget("napari-unetseg", name)[1]
               for name in PANELS]
    seg = widgets[0]
    qtbot.waitUntil(lambda: seg.model_panel.predictor is not None, timeout=120_000)
    seg.model_panel.info_label.setText(seg.model_panel.info_label.text())
    for name, w in zip(PANELS, widgets):
        assert w.minimumSizeHint().width() <= MAX_PANEL_WIDTH, (name, w.minimumSizeHint())


def test_sliders_wait_for_the_model_and_then_show_its_defaults(make_napari_viewer, qtbot,
                                                               tiny_model_path):
    viewer = make_napari_viewer()
    seg = SegmentWidget(viewer, autoload=False)
    assert not seg.watershed.isEnabled()
    seg.model_panel.load(str(tiny_model_path))
    qtbot.waitUntil(lambda: seg.model_panel.predictor is not None, timeout=60_000)
    assert seg.watershed.isEnabled()
    assert seg.thresholds() == seg.model_panel.predictor.thresholds


def test_closing_the_window_saves_edited_labels(make_napari_viewer, tmp_path):
    folder = tmp_path / "images"
    (folder / "labels").mkdir(parents=True)
    shutil.copy(SAMPLES / "tissue_stained.png", folder)
    shutil.copy(SAMPLES / "labels" / "tissue_stained.tif", folder / "labels")
    viewer = make_napari_viewer()
    browse = BrowseWidget(viewer)
    browse.open_folder(folder)
    layer = browse.labels_layer
    layer.selected_label = 999
    layer.data_setitem(np.nonzero(np.ones((20, 20), bool)), 999)  # painted by hand
    viewer.window._qt_window.close()
    saved = tifffile.imread(folder / "labels" / "tissue_stained.tif")
    assert (saved[:20, :20] == 999).all()
