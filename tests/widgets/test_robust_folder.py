"""The folder browser and the training panel never lose, mix or fake a user's work."""

import shutil

import numpy as np
import tifffile

from napari_unetseg.core.io.images import read_label_tiff
from napari_unetseg.widgets.browse import BrowseWidget
from napari_unetseg.widgets.train import TrainWidget
from tests.conftest import SAMPLES

from .conftest import settle


def test_same_stem_images_keep_their_own_labels(make_napari_viewer, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(SAMPLES / "tissue_stained.png", folder / "a.png")
    tifffile.imwrite(folder / "a.tif", np.zeros((40, 50), np.uint8))
    viewer = make_napari_viewer()
    browse = BrowseWidget(viewer)
    browse.auto_check.setChecked(False)
    browse.open_folder(folder)
    settle(browse)
    assert browse.label_path(folder / "a.png") != browse.label_path(folder / "a.tif")
    # A labels layer the user makes by hand is saved like any other.
    shown = browse.images[browse.index]
    plane = viewer.layers[shown.stem].data.shape[:2]
    layer = viewer.add_labels(np.zeros(plane, np.uint16), name="mine")
    assert browse.labels_layer is layer
    layer.data_setitem(np.nonzero(np.ones((5, 5), bool)), 3)
    browse.next()
    settle(browse)
    labels, _, prov = read_label_tiff(browse.label_path(shown))
    assert (labels[:5, :5] == 3).all() and prov["edited_by_hand"]


def test_a_shared_labels_folder_never_mixes_two_folders(make_napari_viewer, tmp_path, errors):
    shared = tmp_path / "labels"
    first, second = tmp_path / "one", tmp_path / "two"
    for folder in (first, second):
        folder.mkdir()
        shutil.copy(SAMPLES / "tissue_stained.png", folder / "t.png")
    viewer = make_napari_viewer()
    browse = BrowseWidget(viewer)
    browse.auto_check.setChecked(False)
    browse.open_folder(first, shared)
    settle(browse)
    layer = viewer.add_labels(np.zeros((256, 320), np.uint16), name="by hand")
    layer.data_setitem(np.nonzero(np.ones((4, 4), bool)), 7)
    assert browse.save()
    saved = (shared / "t.tif").read_bytes()
    browse.open_folder(second, shared)  # another folder, same "Labels to"
    settle(browse)
    assert any("not shown" in e for e in errors)
    assert browse.labels_layer is None
    assert (shared / "t.tif").read_bytes() == saved


def test_save_as_names_are_made_checkpoint_files(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    train = TrainWidget(viewer)
    train.output.value = ""
    assert train.output_path().suffix == ".pt"
    train.output.value = str(tmp_path)
    assert train.output_path().parent == tmp_path and train.output_path().suffix == ".pt"
    train.output.value = str(tmp_path / "mine")
    assert train.output_path() == tmp_path / "mine.pt"
