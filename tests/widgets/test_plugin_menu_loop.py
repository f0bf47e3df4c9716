"""The main loop as a biologist runs it, every panel opened the way napari's Plugins menu
opens it (``add_plugin_dock_widget``, which hands each panel its own viewer proxy):
browse a folder -> correct -> next (saved) -> train -> new model in use -> segment the rest.
"""

import shutil

import numpy as np
import pytest

from napari_unetseg.core.io.images import read_label_tiff
from tests.conftest import SAMPLES

from .conftest import settle

PLUGIN = "napari-unetseg"


def _open(viewer, name):
    return viewer.window.add_plugin_dock_widget(PLUGIN, name)[1]


@pytest.fixture
def folder(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("brightfield_nuclei", "fluorescence_nuclei", "tissue_stained"):
        shutil.copy(SAMPLES / f"{name}.png", folder / f"{name}.png")
    return folder


def _segmented(qtbot, browse, seg):
    qtbot.waitUntil(lambda: browse.labels_layer is not None and not seg.busy, timeout=120_000)
    return browse.labels_layer


def _merge_two_objects(edit, layer):
    """A hand correction through the Edit labels panel: merge two neighbouring objects."""
    edit.layer_picker.reset_choices()
    edit.layer_picker.value = layer
    ids = [int(i) for i in np.unique(layer.data) if i]
    assert len(ids) >= 2, "the segmentation found nothing to correct"
    edit.clear_selection()
    edit.toggle(ids[0])
    edit.toggle(ids[1])
    edit.merge_button.click()
    assert not (layer.data == ids[1]).any()


def test_browse_correct_train_and_segment_the_rest_from_the_plugin_menu(
        make_napari_viewer, qtbot, folder):
    viewer = make_napari_viewer()
    seg = _open(viewer, "Segment nuclei (U-Net)")
    browse = _open(viewer, "Browse folder and export")
    edit = _open(viewer, "Edit labels")
    train = _open(viewer, "Train on corrected labels")
    qtbot.waitUntil(lambda: seg.model_panel.predictor is not None, timeout=120_000)

    browse.open_folder(folder)
    settle(browse)
    corrected = []
    for _ in range(2):
        layer = _segmented(qtbot, browse, seg)
        name = browse.images[browse.index].name
        _merge_two_objects(edit, layer)
        browse.next_button.click()  # saves the corrected labels, shows the next image
        settle(browse)
        saved = folder / "labels" / f"{browse.images[browse.index - 1].stem}.tif"
        assert saved.exists(), "Next did not save the corrected labels"
        assert read_label_tiff(saved)[2]["edited_by_hand"]
        corrected.append(name)

    train.refresh_button.click()
    listed = [train.images_list.item(i).text() for i in range(train.images_list.count())]
    assert sorted(listed) == sorted(corrected)
    train.epochs.value = 1
    train.train_button.click()
    qtbot.waitUntil(lambda: not train.busy, timeout=600_000)
    assert train.result is not None, train.status.text()
    new_model = train.result["checkpoint"]
    assert new_model.startswith(str(folder / "unetseg_model_"))  # beside the labels folder
    qtbot.waitUntil(lambda: seg.model_panel.current == new_model, timeout=120_000)
    assert "unetseg_model_" in train.base_label.text()  # the new model is the one in use

    # The remaining image (segmented by the old model when Next showed it, not corrected)
    # is segmented again with the new model.
    assert train.remaining_button.isEnabled()
    train.remaining_button.click()
    settle(browse)
    assert browse.images[browse.index].name == "tissue_stained.png"
    layer = _segmented(qtbot, browse, seg)
    assert layer.metadata["unetseg_provenance"]["model"] == new_model
    assert layer.data.max() > 0
