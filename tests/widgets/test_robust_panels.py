"""Panels faced with bad files: the user's work and the current model stay as they were."""

import shutil

import numpy as np
import tifffile
import torch

from napari_unetseg.widgets.browse import BrowseWidget
from napari_unetseg.widgets.model_panel import recent_checkpoints
from napari_unetseg.widgets.segment import SegmentWidget
from tests.conftest import SAMPLES

from .conftest import settle


def test_a_malformed_checkpoint_is_refused_and_never_becomes_current(
        make_napari_viewer, qtbot, tiny_model_path, tmp_path, errors):
    viewer = make_napari_viewer()
    seg = SegmentWidget(viewer, autoload=False)
    seg.model_panel.load(str(tiny_model_path))
    qtbot.waitUntil(lambda: seg.model_panel.predictor is not None, timeout=60_000)
    payload = torch.load(tiny_model_path, weights_only=True)
    payload["thresholds"]["seed_threshold"] = float("nan")
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    seg.model_panel.load(str(bad))
    qtbot.waitUntil(lambda: not seg.model_panel.busy, timeout=60_000)
    assert errors and "seed_threshold" in errors[-1]
    assert seg.model_panel.current == str(tiny_model_path)
    assert str(bad) not in recent_checkpoints()


def test_labels_of_another_size_are_neither_shown_nor_replaced(make_napari_viewer, tmp_path,
                                                               errors):
    folder = tmp_path / "images"
    (folder / "labels").mkdir(parents=True)
    shutil.copy(SAMPLES / "tissue_stained.png", folder)
    wrong = np.ones((10, 10), np.uint16)
    tifffile.imwrite(folder / "labels" / "tissue_stained.tif", wrong)
    viewer = make_napari_viewer()
    browse = BrowseWidget(viewer)
    browse.auto_check.setChecked(False)
    browse.open_folder(folder)
    settle(browse)
    assert errors and "not shown" in errors[-1]
    assert browse.labels_layer is None
    browse.save()
    assert np.array_equal(tifffile.imread(folder / "labels" / "tissue_stained.tif"), wrong)
