"""Updating a seeded watershed when only its seeds changed (the seed slider, issue 29)."""

from __future__ import annotations

import numpy as np
from skimage.segmentation import watershed

#: An update that would flood more than this fraction of a component floods all of it.
UPDATE_LIMIT = 0.5


def _box(mask: np.ndarray, pad: int = 0) -> tuple[slice, slice]:
    """Bounding box of a non-empty 2D mask, ``pad`` pixels larger within the mask's shape."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return (slice(max(rows[0] - pad, 0), rows[-1] + 1 + pad),
            slice(max(cols[0] - pad, 0), cols[-1] + 1 + pad))


def _match_seeds(basins, old_seeds, new_seeds):
    """(old seed -> its one new seed or 0, which old basins change), or None if the seeds
    are not nested (more than one threshold moved)."""
    k_old, k_new = int(old_seeds.max()), int(new_seeds.max())
    has_old, has_new = old_seeds > 0, new_seeds > 0
    both = has_old & has_new
    # One threshold moved, so one set of seed pixels holds the other: each seed of the
    # smaller set lies in exactly one seed of the larger, which one assignment finds.
    if np.count_nonzero(has_new) <= np.count_nonzero(has_old):
        if not np.array_equal(both, has_new):
            return None
        small, large, k_small, k_large = new_seeds, old_seeds, k_new, k_old
    else:
        if not np.array_equal(both, has_old):
            return None
        small, large, k_small, k_large = old_seeds, new_seeds, k_old, k_new
    large_of = np.zeros(k_small + 1, np.int64)
    large_of[small[both]] = large[both]
    held = np.bincount(large_of[1:], minlength=k_large + 1)  # small seeds per large seed
    single = (held[large_of] == 1) & (large_of > 0)
    single[0] = False
    small_of = np.zeros(k_large + 1, np.int32)
    small_of[large_of[single]] = np.flatnonzero(single)
    # old seed -> its one new seed (0: vanished, split or merged)
    if small is new_seeds:
        old_to_new = small_of
        unmatched = ~single  # new seeds without a one-to-one partner
    else:
        old_to_new = np.zeros(k_old + 1, np.int32)
        old_to_new[single] = large_of[single]
        unmatched = np.ones(k_new + 1, bool)
        unmatched[old_to_new[single]] = False
    unmatched[0] = False
    changed = old_to_new == 0
    if small is old_seeds:
        # A new seed that is not one old seed grown holds pixels no old seed held (an old
        # one that merged is changed already): their basins change.
        grown = np.flatnonzero(has_new & ~has_old)
        at = grown[unmatched[new_seeds.ravel()[grown]]]
        changed[basins.ravel()[at]] = True
    return old_to_new, changed


def update_flood(basins: np.ndarray, old_seeds: np.ndarray, new_seeds: np.ndarray,
                 elevation: np.ndarray, region: np.ndarray) -> np.ndarray | None:
    """A component's watershed after its seeds changed, flooding only where it can change.

    A seed threshold step shrinks or grows most seeds without changing how many there are:
    such a seed keeps its basin exactly (its pixels that appear or vanish are lower than
    anything around the seed, so no other seed reaches them first, and every other path
    cost is unchanged). Only basins of seeds that vanish, split or merge, and those holding
    a new seed, change, and with them their neighbours. Those basins and their neighbours
    are flooded again; the rest is relabelled. Written here because scikit-image's watershed
    has no incremental form; on a dense image (one foreground component, hundreds of seeds)
    it is what keeps the seed slider live.

    Parameters
    ----------
    basins : ndarray of int32
        The previous watershed of the component's crop: seed number (1..k, in the old
        numbering) per pixel of ``region``, 0 outside.
    old_seeds, new_seeds : ndarray of int32
        Seed numbers at seed pixels (0 elsewhere) before and after the change.
    elevation, region : ndarray
        The watershed's elevation and mask on the crop.

    Returns
    -------
    ndarray of int32 or None
        The new watershed in the new numbering, or None when the change reaches the edge of
        the flooded part or most of the component (then flood it all).
    """
    import cv2

    matched = _match_seeds(basins, old_seeds, new_seeds)
    if matched is None:
        return None
    old_to_new, changed = matched
    changed[0] = False
    out = old_to_new[basins]
    if not changed.any():
        return out
    # The changed basins and their neighbours: dilate the changed pixels by one, within
    # their bounding box (and a pixel more).
    dirty = changed[basins]
    win = _box(dirty, pad=1)
    cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8)
    near = changed.copy()
    near[basins[win][cv2.dilate(dirty[win].view(np.uint8), cross).view(bool)]] = True
    near[0] = False
    area = near[basins]
    if np.count_nonzero(area) > UPDATE_LIMIT * np.count_nonzero(region):
        return None
    sl = _box(area)
    inside = area[sl]
    flood = watershed(elevation[sl], np.where(inside, new_seeds[sl], 0), mask=inside)
    # Where the flooded part meets unchanged basins, the new flood must agree with them;
    # otherwise the change may go on beyond it.
    outside = (region[sl] & ~inside).view(np.uint8)
    edge = inside & cv2.dilate(outside, cross).view(bool)
    if not np.array_equal(flood[edge], out[sl][edge]):
        return None
    out[sl][inside] = flood[inside]
    return out
