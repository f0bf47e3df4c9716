"""What a new user meets first: panels that fit a laptop screen, sliders that do not jump,
edits that survive closing the window."""

import shutil

import numpy as np
import tifffile

from napari_unetseg.widgets.browse import BrowseWidget
from napari_unetseg.widgets.common import MAX_PANEL_WIDTH
from napari_unetseg.widgets.segment import SegmentWidget
from tests.conftest import SAMPLES

from .conftest import settle

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
    settle(browse)
    layer = browse.labels_layer
    layer.selected_label = 999
    layer.data_setitem(np.nonzero(np.ones((20, 20), bool)), 999)  # painted by hand
    viewer.window._qt_window.close()
    saved = tifffile.imread(folder / "labels" / "tissue_stained.tif")
    assert (saved[:20, :20] == 999).all()


def test_all_panels_fit_a_1366x768_laptop_as_scrollable_tabs(make_napari_viewer, qtbot):
    from qtpy.QtWidgets import QApplication, QPushButton

    from napari_unetseg.widgets.common import dock_of

    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1366, 768)
    names = (*PANELS, "Segment large image (blocks, Dask)")
    widgets = [viewer.window.add_plugin_dock_widget("napari-unetseg", n)[1] for n in names]
    qtbot.wait(300)  # the panels join one tab group once docked
    QApplication.processEvents()
    assert window.width() <= 1366 and window.height() <= 768, window.size()
    docks = [dock_of(w) for w in widgets]
    assert all(d is not None for d in docks)
    assert set(window.tabifiedDockWidgets(docks[0])) == set(docks[1:])  # one tab group
    canvas = viewer.window._qt_viewer.canvas.native
    assert canvas.width() >= 600, canvas.width()  # room left for the image
    for name, w, dock in zip(names, widgets, docks):
        dock.raise_()
        qtbot.wait(50)
        for button in w.findChildren(QPushButton):
            if button.isHidden() or not button.isVisibleTo(w):
                continue  # hidden on purpose (controls of another mode)
            w.scroll_area.ensureWidgetVisible(button)
            QApplication.processEvents()
            assert not button.visibleRegion().isEmpty(), (name, button.text())
        assert window.width() <= 1366 and window.height() <= 768, (name, window.size())
