"""The model panel's BioImage Model Zoo round trip, as a user clicks through it."""

import zipfile

import numpy as np

from napari_unetseg.widgets import model_panel
from napari_unetseg.widgets.contributions import sample_layers


def test_export_the_model_in_use_then_segment_with_the_package(make_napari_viewer, qtbot,
                                                              tmp_path, monkeypatch):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-unetseg", "Segment nuclei (U-Net)")
    panel = widget.model_panel
    qtbot.waitUntil(lambda: panel.predictor is not None and not panel.busy, timeout=60_000)
    assert panel.export_button.isEnabled()

    # Export for BioImage Model Zoo…: the save dialog answers a name without ".zip".
    monkeypatch.setattr(model_panel.QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(tmp_path / "my_model"), "")))
    with qtbot.waitSignal(panel.exported, timeout=180_000) as done:
        panel.export_button.click()
    package = tmp_path / "my_model.zip"
    assert done.args == [str(package)] and "rdf.yaml" in zipfile.ZipFile(package).namelist()
    qtbot.waitUntil(lambda: panel.export_button.isEnabled(), timeout=10_000)

    # Browse…: choosing the package loads it like a checkpoint.
    monkeypatch.setattr(model_panel.QFileDialog, "getOpenFileName",
                        staticmethod(lambda *a, **k: (str(package), "")))
    panel.browse_button.click()
    qtbot.waitUntil(lambda: panel.current == str(package) and not panel.busy, timeout=60_000)
    assert panel.device_label.text() == "cpu (ONNX Runtime, int8)"
    assert "Data Science Bowl" in panel.info_label.text()
    assert "bioimage.io package" in panel.details_label.text()
    assert not panel.export_button.isEnabled()  # a package is shared already

    (data, meta, _), _ = sample_layers("fluorescence_nuclei", with_labels=True)
    image = viewer.add_image(data, **meta)
    widget.choose_image(image)
    widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=300_000)
    labels = viewer.layers[f"{image.name} labels"].data
    assert len(np.unique(labels)) - 1 > 100
