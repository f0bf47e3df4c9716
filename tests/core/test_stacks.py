"""One id per nucleus through Z and over time."""

import numpy as np
import pytest

from napari_unetseg.core.instances.postprocess import combine_planes
from napari_unetseg.core.instances.stacks import link_over_time, link_stack, stitch_planes


def _balls(shape=(8, 64, 96), centres=((3.5, 32, 30), (3.5, 32, 58)), r=(3.2, 13, 13)):
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]]
    out = np.zeros(shape, np.uint16)
    for i, (cz, cy, cx) in enumerate(centres, start=1):
        inside = ((zz - cz) / r[0]) ** 2 + ((yy - cy) / r[1]) ** 2 + ((xx - cx) / r[2]) ** 2
        out[(inside <= 1) & (out == 0)] = i
    return out


def test_stitching_gives_one_id_per_nucleus_through_the_stack():
    truth = _balls()
    # What 2D segmentation gives: every plane numbered on its own.
    per_plane = combine_planes((p for p in truth), truth.shape)
    assert len(np.unique(per_plane)) - 1 > 2  # one object per plane and nucleus
    stitched = stitch_planes(per_plane)
    assert len(np.unique(stitched)) - 1 == 2
    for i in (1, 2):
        ids = np.unique(stitched[truth == i])
        assert ids.size == 1 and ids[0] > 0
    assert not np.array_equal(stitched == stitched[truth == 1][0],
                              stitched == stitched[truth == 2][0])


def test_objects_that_barely_overlap_stay_apart():
    a = np.zeros((2, 20, 20), np.uint8)
    a[0, 2:10, 2:10] = 1
    a[1, 9:17, 9:17] = 1  # a 1x1 overlap
    assert len(np.unique(stitch_planes(a, 0.25))) - 1 == 2
    assert len(np.unique(stitch_planes(a, 0.0))) - 1 == 1
    with pytest.raises(ValueError, match="iou_threshold"):
        stitch_planes(a, 1.5)


def test_a_nucleus_that_moves_a_little_keeps_its_id():
    frames = np.zeros((4, 64, 64), np.uint16)
    for t in range(4):
        frames[t, 10 + 2 * t : 24 + 2 * t, 10:24] = 5 + t  # moves down, new id each frame
        if t >= 2:
            frames[t, 40:50, 40:50] = 1  # appears at t = 2
    linked = link_over_time(frames)
    moving = [np.unique(linked[t, 10 + 2 * t : 24 + 2 * t, 10:24]) for t in range(4)]
    assert all(m.size == 1 for m in moving) and len({int(m[0]) for m in moving}) == 1
    new = np.unique(linked[2:, 40:50, 40:50])
    assert new.size == 1 and new[0] != moving[0][0]


def test_time_lapse_of_stacks_is_stitched_then_linked():
    vol = _balls()
    per_plane = combine_planes((p for p in vol), vol.shape)
    tl = np.stack([per_plane, np.roll(per_plane, 2, axis=2)])  # TZYX, a small shift
    out = link_stack(tl, "TZYX", stitch=True, track=True)
    assert len(np.unique(out)) - 1 == 2
    assert np.unique(out[0][vol == 1]).size == 1
    assert out[1][np.roll(vol, 2, axis=2) == 1][0] == out[0][vol == 1][0]


def test_unchanged_objects_keep_their_ids_and_split_ones_get_new_ones():
    from napari_unetseg.core.instances.stacks import keep_ids

    old = np.zeros((4, 8), np.uint64)
    old[:, :3], old[:, 5:] = 2**40, 7  # ids far beyond their count
    new = np.zeros((4, 8), np.uint64)
    new[:, :3], new[:, 5:6], new[:, 7:] = 5, 2**41, 9  # object 7 split in two
    kept = keep_ids(new, old)
    assert (kept[:, :3] == 2**40).all()
    assert len({int(kept[0, 5]), int(kept[0, 7])} & {0, 7, 2**40}) == 0
