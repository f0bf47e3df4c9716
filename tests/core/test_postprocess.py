import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_unetseg.core import watershed_from_maps
from napari_unetseg.core.instances.postprocess import (
    SeededWatershed,
    StackSegmentation,
    watershed_reference,
)
from napari_unetseg.core.training.targets import make_targets
from tests.conftest import two_touching_discs


def soft_maps(labels, blur=1.0, targets="mask_border"):
    t = make_targets(labels, targets)
    return np.stack([ndi.gaussian_filter(c, blur) for c in t]).astype(np.float32)


def test_touching_discs_become_two_objects():
    labels = two_touching_discs()
    out = watershed_from_maps(soft_maps(labels), "mask_border", 0.5, 0.5, 0)
    assert out.max() == 2
    # Each object is mostly one disc.
    for i in (1, 2):
        overlap = np.bincount(out[labels == i], minlength=3)
        assert overlap[1:].max() > 0.9 * (labels == i).sum()


def test_thresholds_split_and_merge():
    labels = two_touching_discs()
    maps = soft_maps(labels)
    assert watershed_from_maps(maps, "mask_border", 0.5, 0.5, 0).max() == 2
    # A seed threshold above every seed value leaves one unseeded blob: kept as one object.
    assert watershed_from_maps(maps, "mask_border", 0.5, 1.0, 0).max() == 1
    # min_size removes everything that is smaller.
    assert watershed_from_maps(maps, "mask_border", 0.5, 0.5, 10_000).max() == 0


@pytest.mark.parametrize("targets", ["mask_border", "mask_border_distance"])
def test_cached_pipeline_equals_straightforward_on_real_maps(fluo, targets):
    """Model-like maps of a real image (its labels' targets, blurred, with a smooth
    perturbation), over a grid of thresholds."""
    _, labels = fluo
    rng = np.random.default_rng(0)
    maps = soft_maps(labels, 1.5, targets)
    maps += ndi.gaussian_filter(rng.normal(0, 0.15, maps.shape), (0, 2, 2)).astype(np.float32)
    shed = SeededWatershed(maps, targets)
    for mt in (0.3, 0.5, 0.7):
        for st in (0.3, 0.5, 0.8):
            for ms in (0, 8, 30):
                fast = shed.labels(mt, st, ms)
                ref = watershed_reference(maps, targets, mt, st, ms)
                assert np.array_equal(fast, ref), (mt, st, ms)
                assert fast.dtype == np.uint16


def test_centre_distance_seeds_do_not_depend_on_the_peak_height(fluo):
    # Trained networks predict centres well below 1: the seeds are taken relative to each
    # component's peak, so the same nuclei come out whether peaks reach 1 or 0.6.
    _, labels = fluo
    maps = soft_maps(labels, 1.0, "mask_border_distance")
    damped = maps.copy()
    damped[2] *= 0.6
    full = watershed_from_maps(maps, "mask_border_distance", 0.5, 0.5, 8)
    assert np.array_equal(full, watershed_from_maps(damped, "mask_border_distance", 0.5, 0.5, 8))
    n_true = len(np.unique(labels)) - 1
    assert 0.95 * n_true < full.max() < 1.05 * n_true


@pytest.mark.parametrize("targets", ["three_class", "binary"])
def test_other_target_modes(targets):
    labels = two_touching_discs()
    t = make_targets(labels, targets).astype(np.float32)
    out = watershed_from_maps(t, targets, 0.5, 0.5, 0)
    assert out.max() == (2 if targets == "three_class" else 1)


def test_stack_ids_are_unique_across_planes():
    labels = two_touching_discs()
    maps = np.stack([soft_maps(labels)] * 3, axis=1)  # (C, Z, Y, X)
    out = watershed_from_maps(maps, "mask_border", 0.5, 0.5, 0)
    assert out.shape == (3, *labels.shape)
    assert sorted(np.unique(out))[1:] == [1, 2, 3, 4, 5, 6]
    seg = StackSegmentation("mask_border", (3,))
    for i in (0, 2):
        seg.add_plane(i, maps[:, i])
    t = {"mask_threshold": 0.5, "seed_threshold": 0.5, "min_size": 0}
    partial = seg.stack_labels(t, out.shape)
    assert partial[1].max() == 0 and sorted(np.unique(partial))[1:] == [1, 2, 3, 4]


def test_many_objects_give_uint32():
    # 300x300 checkerboard of isolated pixels: 45,000 objects, and 90,000 with two planes.
    mask = np.zeros((300, 600), np.float32)
    mask[::2, ::2] = 1
    maps = np.stack([mask, np.zeros_like(mask)])
    out = watershed_from_maps(np.stack([maps, maps], axis=1), "mask_border", 0.5, 0.5, 0)
    assert out.dtype == np.uint32 and out.max() == 2 * 150 * 300
    one_plane = watershed_from_maps(maps, "mask_border", 0.5, 0.5, 0)
    assert one_plane.dtype == np.uint16 and one_plane.max() == 150 * 300


def test_slider_drag_reuses_unchanged_clusters_and_still_equals_the_reference(fluo):
    # A dense image (the fluorescence sample tiled, ~750 nuclei): the seed slider moves up
    # and down; every step must equal the straightforward pipeline although most clusters
    # keep their cached watershed.
    from scipy import ndimage as ndi

    from napari_unetseg.core.instances.postprocess import SeededWatershed, watershed_reference
    from napari_unetseg.core.training.targets import make_targets

    labels = np.tile(fluo[1], (2, 2))[:1024, :1024]
    rng = np.random.default_rng(1)
    maps = np.stack([np.clip(ndi.gaussian_filter(c, 2.0) + rng.normal(0, 0.04, c.shape), 0, 1)
                     for c in make_targets(labels, "mask_border", 3)]).astype(np.float32)
    shed = SeededWatershed(maps, "mask_border")
    reused = 0
    for st in (0.5, 0.52, 0.55, 0.45, 0.6, 0.3, 0.31):
        before = dict(shed._ws_cache)
        out = shed.labels(0.5, st, 8)
        reused += sum(1 for c, v in shed._ws_cache.items() if before.get(c) is v)
        assert np.array_equal(out, watershed_reference(maps, "mask_border", 0.5, st, 8)), st
    assert reused > 0


def test_dense_seed_steps_update_the_one_component_and_equal_the_reference(monkeypatch):
    # Touching nuclei filling the plane (one foreground component, ~150 seeds): every seed
    # step changes that component's seeds; its watershed is updated where seeds vanished,
    # split, merged or appeared, never flooded whole, and still equals the reference, up
    # the slider and back down.
    from scipy import ndimage as ndi
    from scipy.spatial import cKDTree

    import napari_unetseg.core.instances.postprocess as pp
    from napari_unetseg.core.training.targets import make_targets

    rng = np.random.default_rng(3)
    pts = rng.uniform(0, 384, (150, 2))
    yy, xx = np.mgrid[:384, :384]
    labels = (cKDTree(pts).query(np.c_[yy.ravel(), xx.ravel()])[1] + 1).reshape(384, 384)
    # Noise makes small seeds appear, vanish, split and merge as the threshold moves; a
    # sigmoid instead of clipping keeps exact ties (which any cropped flood may break
    # differently, see SeededWatershed) out of the comparison.
    maps = np.stack([1 / (1 + np.exp(-6 * (ndi.gaussian_filter(c, 1.5) - 0.5
                                           + rng.normal(0, 0.05, c.shape))))
                     for c in make_targets(labels.astype(np.int32), "mask_border")]
                    ).astype(np.float32)
    assert ndi.label(maps[0] > 0.5)[1] == 1
    updates = []
    real_update = pp.update_flood
    monkeypatch.setattr(pp, "update_flood",
                        lambda *a: updates.append(real_update(*a)) or updates[-1])
    floods = []
    real_many = pp._watershed_many
    monkeypatch.setattr(pp, "_watershed_many",
                        lambda items: floods.append(len(items)) or real_many(items))
    shed = pp.SeededWatershed(maps, "mask_border")
    counts = set()
    steps = [0.3 + 0.04 * k for k in range(1, 17)]
    for st in steps + steps[-2::-1]:
        out = shed.labels(0.5, st, 8)
        assert np.array_equal(out, pp.watershed_reference(maps, "mask_border", 0.5, st, 8)), st
        counts.add(int(out.max()))
    assert len(counts) > 3  # seeds did vanish and come back
    # Most steps are updates; the others (most of the component changed) flood it whole.
    assert sum(u is not None for u in updates) > len(updates) / 2
    assert sum(floods) == 1 + sum(u is None for u in updates)
