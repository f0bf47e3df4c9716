"""Correcting labels by hand, clicking through a folder, exporting: as a user does it."""

import csv
import shutil

import numpy as np
import pytest
import tifffile

from napari_unetseg.widgets.browse import BrowseWidget
from napari_unetseg.widgets.contributions import sample_layers
from napari_unetseg.widgets.edit import EditWidget
from napari_unetseg.widgets.segment import SegmentWidget
from tests.conftest import SAMPLES

from .conftest import settle


@pytest.fixture
def gt_layer(make_napari_viewer):
    viewer = make_napari_viewer()
    (img, meta, _), (labels, _, _) = sample_layers("fluorescence_nuclei", with_labels=True)
    viewer.add_image(img, **meta)
    layer = viewer.add_labels(labels.copy(), name="nuclei")
    return viewer, layer, labels


def test_each_helper_is_one_undoable_step(gt_layer):
    viewer, layer, original = gt_layer
    widget = EditWidget(viewer)
    widget.layer_picker.value = viewer.layers["nuclei"]
    for i in (5, 9):
        widget.toggle(i)
    widget.merge_button.click()
    assert not (layer.data == 9).any() and (layer.data == 5).sum() == np.isin(
        original, [5, 9]).sum()
    layer.undo()
    assert np.array_equal(layer.data, original)

    widget.toggle(12)
    widget.delete_button.click()
    assert not (layer.data == 12).any()
    layer.undo()
    assert np.array_equal(layer.data, original)

    merged = np.isin(original, [20, 21]).sum()
    layer.data_setitem(np.nonzero(np.isin(layer.data, [21])), 20)  # the user merges by hand
    widget.toggle(20)
    widget.split_button.click()
    assert (layer.data == 20).sum() < merged and layer.data.max() == original.max() + 1
    layer.undo()

    widget.min_size.setValue(60)
    widget.remove_small_button.click()
    sizes = np.bincount(layer.data.ravel())[1:]
    assert sizes[sizes > 0].min() >= 60
    layer.undo()
    # A hole punched into object 30 is filled back.
    hole = np.argwhere(original == 30)
    cy, cx = hole.mean(0).astype(int)
    layer.data_setitem((np.array([cy]), np.array([cx])), 0)
    assert layer.data[cy, cx] == 0
    widget.fill_button.click()
    assert layer.data[cy, cx] == 30
    widget.relabel_button.click()
    assert layer.data.max() == len(np.unique(layer.data)) - 1


def test_picking_by_click_selects_objects(gt_layer):
    viewer, layer, original = gt_layer
    widget = EditWidget(viewer)
    widget.layer_picker.value = viewer.layers["nuclei"]
    widget.pick_button.setChecked(True)
    y, x = np.argwhere(original == 7)[0]

    class Click:
        position = (float(y), float(x))

    widget._on_click(layer, Click())
    assert widget.selected == [7]
    widget._on_click(layer, Click())
    assert widget.selected == []


def test_edits_survive_slider_moves(make_napari_viewer, qtbot, tiny_model_path):
    viewer = make_napari_viewer()
    seg = SegmentWidget(viewer, autoload=False)
    seg.model_panel.load(str(tiny_model_path))
    qtbot.waitUntil(lambda: seg.model_panel.predictor is not None, timeout=60_000)
    (img, meta, _), = sample_layers("tissue_stained")
    viewer.add_image(img, **meta)
    seg.watershed.mask_slider.setValue(0.3)
    seg.watershed.seed_slider.setValue(0.3)
    seg.watershed.size_slider.setValue(0)
    seg.run()
    qtbot.waitUntil(lambda: not seg.busy, timeout=120_000)
    layer = viewer.layers["tissue_stained labels"]
    # The user paints a new object with napari's brush (a history-recorded edit).
    layer.selected_label = 999
    idx = np.nonzero(np.zeros(layer.data.shape, bool) | _square(layer.data.shape))
    layer.data_setitem(idx, 999)
    painted = layer.data == 999
    for value in (0.6, 0.45, 0.7):
        seg.watershed.mask_slider.setValue(value)
        assert np.array_equal(layer.data == 999, painted)
    seg.run()  # re-running keeps the edit too
    qtbot.waitUntil(lambda: not seg.busy, timeout=120_000)
    assert np.array_equal(layer.data == 999, painted)


def _square(shape):
    m = np.zeros(shape, bool)
    m[100:130, 150:180] = True
    return m


def test_browse_segment_edit_quit_and_resume(make_napari_viewer, qtbot, tmp_path,
                                            tiny_model_path):
    folder = tmp_path / "images"
    folder.mkdir()
    names = ["a_fluo", "b_tissue", "c_fluo"]
    for n, src in zip(names, ["fluorescence_nuclei", "tissue_stained", "fluorescence_nuclei"]):
        shutil.copy(SAMPLES / f"{src}.png", folder / f"{n}.png")
    viewer = make_napari_viewer()
    seg = SegmentWidget(viewer, autoload=False)
    seg.model_panel.load(str(tiny_model_path))
    qtbot.waitUntil(lambda: seg.model_panel.predictor is not None, timeout=60_000)
    browse = BrowseWidget(viewer)
    browse.open_folder(folder)
    settle(browse)
    # Labels go inside the image folder: sibling folders never share (or overwrite) them.
    assert browse.out_dir == folder / "labels" and browse.index == 0
    qtbot.waitUntil(lambda: browse.labels_layer is not None and not seg.busy,
                    timeout=120_000)
    # Edit image 1, move on: it is saved with the edit.
    browse.labels_layer.data_setitem(np.nonzero(_square(browse.labels_layer.data.shape)), 777)
    browse.next()
    settle(browse)
    saved = tifffile.imread(folder / "labels" / "a_fluo.tif")
    assert (saved[_square(saved.shape)] == 777).all()
    qtbot.waitUntil(lambda: browse.labels_layer is not None and not seg.busy,
                    timeout=120_000)
    assert browse.index == 1
    # "Quit" while image 2 has an unsaved segmentation: it is saved, not lost.
    browse._save_on_exit()
    assert (folder / "labels" / "b_tissue.tif").exists()
    # Reopen later: resume at the first image without labels, with saved ones marked done.
    viewer2 = make_napari_viewer()
    again = BrowseWidget(viewer2)
    again.auto_check.setChecked(False)
    again.open_folder(folder)
    settle(again)
    assert again.index == 2
    assert [again.list.item(i).text().startswith("✓") for i in range(3)] == [True, True, False]
    again.open_image(0)
    settle(again)
    assert (again.labels_layer.data[_square(saved.shape)] == 777).all()

    # Export all: the corrected labels only, unless asked (b_tissue was never corrected).
    only = tmp_path / "corrected"
    again.export_all(str(only))
    settle(again)
    assert sorted(p.name for p in only.iterdir()) == ["labels_stack.tif", "objects.csv"]
    assert {r["image"] for r in csv.DictReader(open(only / "objects.csv"))} == {"a_fluo"}
    # With the uncorrected ones: the images differ in shape, one TIFF each plus one CSV.
    again.include_uncorrected.setChecked(True)
    out = tmp_path / "export"
    again.export_all(str(out))
    settle(again)
    assert sorted(p.name for p in out.iterdir()) == ["a_fluo.tif", "b_tissue.tif", "objects.csv"]
    back = tifffile.imread(out / "a_fluo.tif")
    assert np.array_equal(back, saved)
    rows = list(csv.DictReader(open(out / "objects.csv")))
    for name in ("a_fluo", "b_tissue"):
        objects = len(np.unique(tifffile.imread(folder / "labels" / f"{name}.tif"))) - 1
        assert len([r for r in rows if r["image"] == name]) == objects
    assert len(rows) > 0
    assert all(float(r["mean_intensity"]) >= 0 for r in rows)


def test_export_current_layer_and_same_shape_stack(make_napari_viewer, tmp_path):
    from napari_unetseg.core.io.export import export_label_set

    viewer = make_napari_viewer()
    browse = BrowseWidget(viewer)
    (img, meta, _), (labels, _, _) = sample_layers("tissue_stained", with_labels=True)
    browse.image_layer = viewer.add_image(img, **meta)
    browse.labels_layer = viewer.add_labels(labels, name="tissue labels")
    browse.export_current(str(tmp_path / "t.tif"))
    with tifffile.TiffFile(tmp_path / "t.tif") as tif:
        assert tif.is_imagej and np.array_equal(tif.asarray(), labels)
    rows = list(csv.DictReader(open(tmp_path / "t.csv")))
    assert len(rows) == labels.max()
    before = (tmp_path / "t.tif").read_bytes()
    browse.labels_layer.data = labels[::-1].copy()
    browse.export_current(str(tmp_path / "t.tif"))  # exists: refused, file unchanged
    assert (tmp_path / "t.tif").read_bytes() == before
    written = export_label_set(["x", "y"], [labels, labels[::-1]], tmp_path / "stack")
    with tifffile.TiffFile(written[0]) as tif:
        assert tif.series[0].axes == "ZYX" and tif.series[0].shape == (2, *labels.shape)
        assert tif.imagej_metadata["Labels"] == ["x", "y"]
        assert np.array_equal(tif.asarray()[1], labels[::-1])


def test_export_without_browsing_uses_the_selected_labels(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    (img, meta, _), (labels, _, _) = sample_layers("tissue_stained", with_labels=True)
    viewer.add_image(img, **meta)
    viewer.add_labels(labels, name="mine", metadata={"unetseg_provenance": {
        "source": "tissue_stained"}})
    BrowseWidget(viewer).export_current(str(tmp_path / "mine.tif"))
    assert np.array_equal(tifffile.imread(tmp_path / "mine.tif"), labels)
    rows = list(csv.DictReader(open(tmp_path / "mine.csv")))
    assert rows[0]["image"] == "tissue_stained" and rows[0]["mean_intensity"] != ""


def test_split_acts_on_a_whole_3d_object_of_a_labels_file(make_napari_viewer, tmp_path):
    # 3D labels written by unetseg (mode 3d) opened in napari: Split cuts the object
    # through all its planes, with one new id.
    from napari_unetseg.core.io.images import write_label_tiff
    from tests.conftest import two_touching_discs

    merged = (two_touching_discs() > 0).astype(np.uint16)
    volume = np.zeros((6, *merged.shape), np.uint16)
    volume[1:5] = merged * 4
    write_label_tiff(tmp_path / "cells.tif", volume, axes="ZYX", voxel_size=(2, 0.5, 0.5),
                     provenance={"mode": "3d"})
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(tmp_path / "cells.tif"), plugin="napari-unetseg")
    assert tuple(layer.scale) == (2.0, 0.5, 0.5)
    widget = EditWidget(viewer)
    widget.layer_picker.value = layer
    widget.toggle(4)
    widget.split_button.click()
    assert set(np.unique(layer.data)) == {0, 4, 5}
    assert all(set(np.unique(layer.data[z])) == {0, 4, 5} for z in range(1, 5))
    layer.undo()
    assert np.array_equal(layer.data, volume)
