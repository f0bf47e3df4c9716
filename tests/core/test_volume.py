"""3D segmentation of Z-stacks: synthetic volumes, orthogonal views, the 3D watershed."""

import numpy as np
import pytest

from napari_unetseg.core.base.synthetic import synthetic_volume
from napari_unetseg.core.base.thresholds import Thresholds
from napari_unetseg.core.instances.metrics import image_scores
from napari_unetseg.core.instances.postprocess import SeededWatershed, watershed_reference
from napari_unetseg.core.run.segmentation import stack_mode
from napari_unetseg.core.run.volume import (
    VolumeSegmentation,
    anisotropy,
    parse_voxel_size,
    segment_volume,
    volume_maps,
)
from tests.conftest import SAMPLES


def test_synthetic_volume_has_one_body_per_nucleus_shorter_with_a_longer_z_step(fluo):
    image, labels = fluo
    crop = labels[:200, :200]
    vol2, gt2 = synthetic_volume(crop, image[:200, :200], anisotropy=2, seed=3)
    vol4, gt4 = synthetic_volume(crop, image[:200, :200], anisotropy=4, seed=3)
    assert vol2.shape == gt2.shape and vol2.dtype == np.uint16
    ids = set(np.unique(crop)) - {0}
    assert set(np.unique(gt2)) - {0} == ids  # every nucleus, with its 2D id
    # A nucleus is one body: its planes are consecutive and its widest section is (nearly)
    # the hand-drawn outline, narrowing above and below.
    some = sorted(ids)[len(ids) // 2]
    zs = np.flatnonzero((gt2 == some).any(axis=(1, 2)))
    assert np.array_equal(zs, np.arange(zs[0], zs[-1] + 1)) and zs.size >= 3
    areas = [(gt2[z] == some).sum() for z in zs]
    assert max(areas) > 0.8 * (crop == some).sum() and areas[0] < max(areas)
    z4 = np.flatnonzero((gt4 == some).any(axis=(1, 2)))
    assert z4.size < zs.size
    # Brighter inside nuclei than outside.
    assert vol2[gt2 > 0].mean() > 2 * vol2[gt2 == 0].mean()


def test_3d_watershed_matches_the_reference_and_separates_touching_balls():
    zz, yy, xx = np.mgrid[:24, :40, :64]
    d1 = np.sqrt((zz - 12) ** 2 + (yy - 20) ** 2 + (xx - 22) ** 2)
    d2 = np.sqrt((zz - 12) ** 2 + (yy - 20) ** 2 + (xx - 42) ** 2)
    mask = ((d1 < 11) | (d2 < 11)).astype(np.float32)
    border = (np.minimum(d1, d2) > 8) * mask  # a shell: the cores are the seeds
    maps = np.stack([mask, border]).astype(np.float32)
    labels = SeededWatershed(maps, "mask_border").labels(0.5, 0.5, 10)
    assert labels.max() == 2
    assert labels[12, 20, 22] != labels[12, 20, 42]
    ref = watershed_reference(maps, "mask_border", 0.5, 0.5, 10)
    assert image_scores(ref, labels)[-1] == 1.0


def test_volume_segmentation_caches_the_3d_watershed_and_scales_min_size():
    zz, yy, xx = np.mgrid[:10, :32, :32]
    ball = ((zz - 5) ** 2 * 4 + (yy - 16) ** 2 + (xx - 16) ** 2 < 64).astype(np.float32)
    maps = np.stack([ball, np.zeros_like(ball)])
    seg = VolumeSegmentation("mask_border", (2, 10), anisotropy=2.0)
    seg.add_frame(0, maps)
    seg.add_frame(1, maps)
    t = {"mask_threshold": 0.5, "seed_threshold": 0.5, "min_size": 8}
    labels = seg.stack_labels(t, (2, 10, 32, 32))
    assert set(np.unique(labels[0])) == {0, 1} and set(np.unique(labels[1])) == {0, 2}
    # min_size is a section area; as a volume, the ball (about 1000 voxels) survives 64 px²
    # (a ball of ~280 voxels at Z step 2) and not 200 px².
    assert (Thresholds(min_size=64).min_volume(2.0, 1.0) < ball.sum()
            < Thresholds(min_size=200).min_volume(2.0, 1.0))
    assert seg.stack_labels(dict(t, min_size=200), (2, 10, 32, 32)).max() == 0
    assert seg.seed_map(12).shape == (32, 32)  # frame 1, plane 2


def test_a_3d_nucleus_that_moves_a_little_keeps_its_id_over_time():
    from napari_unetseg.core.instances.stacks import link_stack

    zz, yy, xx = np.mgrid[:8, :32, :48]
    seg = VolumeSegmentation("mask_border", (3, 8), anisotropy=2.0)
    for t in range(3):
        a = ((zz - 4) ** 2 * 4 + (yy - 16) ** 2 + (xx - 12 - 2 * t) ** 2 < 36)
        b = ((zz - 4) ** 2 * 4 + (yy - 16) ** 2 + (xx - 36) ** 2 < 36)
        mask = (a | b).astype(np.float32)
        seg.add_frame(t, np.stack([mask, np.zeros_like(mask)]))
    t = {"mask_threshold": 0.5, "seed_threshold": 0.5, "min_size": 4}
    labels = seg.stack_labels(t, (3, 8, 32, 48))
    assert len(np.unique(labels)) == 7  # 2 nuclei x 3 frames, unique ids
    tracked = link_stack(labels, "TZYX", track=True)
    assert len(np.unique(tracked)) == 3
    assert tracked[0, 4, 16, 12] == tracked[2, 4, 16, 16] != tracked[2, 4, 16, 36]


def test_stack_mode_voxel_size_and_anisotropy_inputs():
    assert stack_mode("auto", "ZYX") == "3d" and stack_mode("auto", "TYX") == "2d"
    with pytest.raises(ValueError, match="needs a Z axis"):
        stack_mode("3d", "YX")
    assert parse_voxel_size("2,0.5,0.5") == (2.0, 0.5, 0.5)
    assert parse_voxel_size("0.3") == (0.3, 0.3, 0.3)
    for bad in ("1,2", "a,b,c", "0,1,1", "-1,1,1"):
        with pytest.raises(ValueError, match="voxel size"):
            parse_voxel_size(bad)
    assert anisotropy((2.0, 0.5, 0.5)) == 4.0 and anisotropy(None) == 1.0


@pytest.mark.slow
def test_3d_mode_segments_the_sample_volume_with_one_id_per_nucleus():
    from napari_unetseg.core import Predictor
    from napari_unetseg.core.io.images import read_image, read_labels, read_voxel_size

    volume = read_image(SAMPLES / "nuclei_3d.tif")
    truth = read_labels(SAMPLES / "labels" / "nuclei_3d.tif")
    voxel = read_voxel_size(SAMPLES / "nuclei_3d.tif")
    assert voxel == (1.0, 0.5, 0.5)
    pred = Predictor("default", "cpu")
    seg, labels, d = segment_volume(pred, volume, pred.thresholds,
                                    anisotropy=anisotropy(voxel))
    assert labels.shape == truth.shape and d > 5
    scores = image_scores(truth, labels)
    assert scores[0] >= 0.8, scores  # AP50 on voxels
    # The averaged maps come from the three views: XY alone differs.
    xy, _, _ = volume_maps(pred, volume[:, :96, :96], anisotropy=2.0, views=("xy",))
    all3, _, _ = volume_maps(pred, volume[:, :96, :96], anisotropy=2.0)
    assert xy.shape == all3.shape == (2, *volume.shape[:1], 96, 96)
    assert not np.allclose(xy, all3, atol=0.05)


@pytest.mark.slow
def test_light_lost_with_depth_does_not_empty_the_deep_planes():
    # Plane brightness falling from 10^3 to 10^-2 through the stack (issue 28): one scaling
    # for the whole volume left 15 of 18 planes empty.
    import tifffile

    from napari_unetseg.core.inference.predictor import Predictor
    from napari_unetseg.core.run.volume import segment_volume

    volume = tifffile.imread(SAMPLES / "nuclei_3d.tif").astype(np.float32)
    truth = tifffile.imread(SAMPLES / "labels" / "nuclei_3d.tif")
    gain = 10.0 ** np.linspace(3, -2, volume.shape[0], dtype=np.float32)
    dimmed = volume * gain[:, None, None]
    pred = Predictor("default", "cpu")
    t = Thresholds.of(pred.thresholds).for_volume().as_dict()
    _, labels, _ = segment_volume(pred, dimmed, t, diameter=24)
    with_objects = int(sum(plane.any() for plane in labels))
    in_truth = int(sum(plane.any() for plane in truth))
    assert with_objects >= in_truth - 2, (with_objects, in_truth)
