"""The "Train on corrected labels" panel, used as a biologist would after correcting."""

import shutil

import numpy as np
import pytest

from napari_unetseg.widgets.browse import BrowseWidget
from napari_unetseg.widgets.segment import SegmentWidget
from napari_unetseg.widgets.train import FROM_LAYERS, TrainWidget
from tests.conftest import SAMPLES

from .conftest import settle


@pytest.fixture
def corrected_folder(tmp_path):
    """Two sample images whose corrected labels are saved in the browser's labels folder."""
    folder = tmp_path / "images"
    (folder / "labels").mkdir(parents=True)
    for name in ("tissue_stained", "fluorescence_nuclei"):
        shutil.copy(SAMPLES / f"{name}.png", folder / f"{name}.png")
        shutil.copy(SAMPLES / "labels" / f"{name}.tif", folder / "labels" / f"{name}.tif")
    return folder


def _panels(make_napari_viewer, qtbot, model, folder):
    viewer = make_napari_viewer()
    seg = SegmentWidget(viewer, autoload=False)
    seg.model_panel.load(str(model))
    qtbot.waitUntil(lambda: seg.model_panel.predictor is not None, timeout=60_000)
    browse = BrowseWidget(viewer)
    browse.auto_check.setChecked(False)
    browse.open_folder(folder)
    settle(browse)
    train = TrainWidget(viewer)
    viewer.window.add_dock_widget(train)
    return viewer, seg, browse, train


def test_train_on_saved_labels_writes_and_loads_a_new_model(
        make_napari_viewer, qtbot, tiny_model_path, corrected_folder):
    viewer, seg, browse, train = _panels(make_napari_viewer, qtbot, tiny_model_path,
                                         corrected_folder)
    assert train.images_list.count() == 2
    assert "tiny.pt" in train.base_label.text()  # it starts from the model in use
    # The new model goes next to the labels folder by default.
    assert str(train.output.value).startswith(str(corrected_folder / "unetseg_model_"))
    existing = corrected_folder / "mine.pt"
    existing.write_text("a file the user keeps")
    train.output.value = str(existing)
    train.epochs.value = 2
    train.train()
    qtbot.waitUntil(lambda: not train.busy, timeout=300_000)
    result = train.result
    assert result is not None and result["epochs"] == 2
    assert len(train.plot.loss) == 2  # the live plot moved with the epochs
    new = corrected_folder / "mine-2.pt"
    assert result["checkpoint"] == str(new) and new.exists()
    assert (corrected_folder / "mine-2.int8.onnx").exists()
    assert existing.read_text() == "a file the user keeps"
    qtbot.waitUntil(lambda: seg.model_panel.current == str(new), timeout=60_000)
    # The int8 model (made in a child process) is valid and matches the new checkpoint.
    assert seg.model_panel.predictor.backend == "onnxruntime-int8"
    from napari_unetseg.core.network.checkpoint import read_checkpoint_info

    prov = read_checkpoint_info(new)["provenance"]
    assert prov["base_model"] == str(tiny_model_path)
    assert sorted(prov["images_used"]) == ["fluorescence_nuclei.png", "tissue_stained.png"]
    # Offered next: segment the images without labels, in the browser.
    assert train.remaining_button.isEnabled()


def test_cancel_keeps_the_best_model_so_far(make_napari_viewer, qtbot, tiny_model_path,
                                            corrected_folder):
    viewer, seg, browse, train = _panels(make_napari_viewer, qtbot, tiny_model_path,
                                         corrected_folder)
    train.hold_out.value = True
    train.minutes.value = 30
    steps = []
    train.job.progress.connect(lambda d, t: steps.append(d))
    train.train()
    # Past the first epoch (16 steps of 4 crops), then cancel.
    qtbot.waitUntil(lambda: len(train.plot.loss) >= 1, timeout=300_000)
    train.cancel_button.click()
    qtbot.waitUntil(lambda: not train.busy, timeout=300_000)
    assert train.result["interrupted"] and len(steps) > 0
    assert train.result["before"] is not None and train.result["after"] is not None
    assert "Held-out mAP" in train.status.text()


def test_nothing_usable_is_a_clear_message_and_no_training(make_napari_viewer, errors):
    viewer = make_napari_viewer()
    (img, meta, _), = __import__(
        "napari_unetseg.widgets.contributions", fromlist=["sample_layers"]).sample_layers(
        "tissue_stained")
    viewer.add_image(img, **meta)
    viewer.add_labels(np.zeros(img.shape[:2], np.uint16), name="empty")
    train = TrainWidget(viewer)
    viewer.window.add_dock_widget(train)
    train.source.value = FROM_LAYERS
    train.reset_choices()
    train.train()
    assert not train.busy and errors and "empty" in errors[-1]
    viewer.add_labels(np.ones((5, 5), np.uint16), name="wrong size")
    train.reset_choices()
    train.labels_layer.value = viewer.layers["wrong size"]
    train.train()
    assert not train.busy and "differ in shape" in errors[-1]


def test_closing_the_panel_stops_its_training(make_napari_viewer, qtbot, tiny_model_path,
                                              corrected_folder):
    viewer, seg, browse, train = _panels(make_napari_viewer, qtbot, tiny_model_path,
                                         corrected_folder)
    train.minutes.value = 30
    train.train()
    qtbot.waitUntil(lambda: len(train.plot.loss) >= 1, timeout=300_000)
    viewer.window.remove_dock_widget(train)  # the dock's close button
    qtbot.waitUntil(lambda: not train.busy, timeout=120_000)
    assert train.job.cancelled()
