"""Editing operations on instance labels (numpy in, numpy out), for hand correction.

Painting, filling and erasing are napari's own tools; these are the operations it lacks.
Each returns a new array and leaves its input untouched, so a caller can diff the two and
record the change as one undo step.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def _ids(labels_ids) -> np.ndarray:
    ids = np.unique(np.asarray(list(labels_ids), dtype=np.int64))
    return ids[ids > 0]


def merge_labels(labels: np.ndarray, ids) -> np.ndarray:
    """Merge the given objects into one, keeping the smallest id.

    >>> merge_labels(np.array([[1, 2, 0, 3]]), [3, 2]).tolist()
    [[1, 2, 0, 2]]
    """
    ids = _ids(ids)
    if ids.size < 2:
        raise ValueError("select at least two objects to merge")
    out = labels.copy()
    out[np.isin(labels, ids)] = ids[0]
    return out


def delete_labels(labels: np.ndarray, ids) -> np.ndarray:
    """Set the given objects to background.

    >>> delete_labels(np.array([[1, 2, 2, 3]]), [2]).tolist()
    [[1, 0, 0, 3]]
    """
    out = labels.copy()
    out[np.isin(labels, _ids(ids))] = 0
    return out


def remove_small_objects(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Remove objects with fewer than ``min_size`` pixels (ids of the others are kept).

    >>> remove_small_objects(np.array([[1, 2, 2, 3, 3, 3]]), 2).tolist()
    [[0, 2, 2, 3, 3, 3]]
    """
    sizes = np.bincount(labels.ravel())
    small = np.flatnonzero(sizes < min_size)
    out = labels.copy()
    out[np.isin(labels, small[small > 0])] = 0
    return out


def fill_holes(labels: np.ndarray) -> np.ndarray:
    """Fill background regions enclosed by a single object with that object's id.

    Works plane by plane for stacks; background touching the image border or lying between
    two different objects is left alone.

    >>> ring = np.array([[0, 0, 0, 0, 0],
    ...                  [0, 4, 4, 4, 0],
    ...                  [0, 4, 0, 4, 0],
    ...                  [0, 4, 4, 4, 0],
    ...                  [0, 0, 0, 0, 0]])
    >>> int(fill_holes(ring)[2, 2]), int(fill_holes(ring)[0, 0])
    (4, 0)
    """
    if labels.ndim > 2:
        return np.stack([fill_holes(p) for p in labels])
    out = labels.copy()
    holes, n = ndi.label(labels == 0)
    if n == 0:
        return out
    border = np.unique(np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]]))
    for i, sl in enumerate(ndi.find_objects(holes), start=1):
        if sl is None or i in border:
            continue
        # Grow the box by one pixel to see the hole's neighbours.
        box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in sl)
        hole = holes[box] == i
        ring = ndi.binary_dilation(hole) & ~hole
        around = np.unique(labels[box][ring])
        if around.size == 1 and around[0] > 0:
            out[box][hole] = around[0]
    return out


def relabel_sequential(labels: np.ndarray) -> np.ndarray:
    """Number objects 1..N in order of their current ids.

    >>> relabel_sequential(np.array([[0, 7, 7, 3]])).tolist()
    [[0, 2, 2, 1]]
    """
    from skimage.segmentation import relabel_sequential as _relabel

    return _relabel(labels)[0].astype(labels.dtype, copy=False)


def split_label(
    labels: np.ndarray,
    label_id: int,
    seed_map: np.ndarray | None = None,
    min_distance: int = 3,
) -> np.ndarray:
    """Split one object in two by a seeded watershed inside it.

    Seeds are the two strongest separated maxima of ``seed_map`` within the object (the
    model's mask - border map, cached from the last run), or of the object's distance
    transform when there is no map. The second part gets a new id (max + 1).

    Raises
    ------
    ValueError
        When the object does not exist or has only one maximum to split at.
    """
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    region_all = labels == label_id
    if label_id <= 0 or not region_all.any():
        raise ValueError(f"there is no object {label_id} to split")
    sl = ndi.find_objects(region_all.astype(np.uint8))[0]
    region = region_all[sl]
    if seed_map is not None:
        score = np.where(region, seed_map[sl], 0).astype(np.float64)
    else:
        score = ndi.distance_transform_edt(region)
    score = ndi.gaussian_filter(score, 1.0) * region
    peaks = peak_local_max(score, min_distance=min_distance, num_peaks=2,
                           labels=region.astype(np.uint8), exclude_border=False)
    if len(peaks) < 2:
        raise ValueError(f"object {label_id} has a single core; nothing to split at")
    markers = np.zeros(region.shape, np.int32)
    markers[tuple(peaks[0])] = 1
    markers[tuple(peaks[1])] = 2
    parts = watershed(-score, markers, mask=region)
    out = labels.copy()
    new_id = int(labels.max()) + 1
    if new_id > np.iinfo(out.dtype).max:
        out = out.astype(np.uint32)
    out[sl][parts == 2] = new_id
    return out


def split_object(labels: np.ndarray, label_id: int, seed_map_of=None, *,
                 through_z: bool = False) -> np.ndarray:
    """Split one object of a 2D image or a stack in two; the new part's id is unique.

    Parameters
    ----------
    labels : ndarray
        ``YX``, ``ZYX``/``TYX`` or ``TZYX`` labels.
    label_id : int
        The object to split.
    seed_map_of : callable, optional
        ``seed_map_of(plane_index)`` gives the cached seed map of a plane (flat index over
        the leading axes), or None; without maps the object's shape decides.
    through_z : bool
        Ids are 3D objects through Z (the last leading axis): the object is split as a
        volume, in its own time frame. Otherwise it is split in the plane where it starts.
    """
    where = np.argwhere(labels == label_id) if label_id > 0 else np.empty((0, labels.ndim))
    if where.size == 0:
        raise ValueError(f"there is no object {label_id} to split")
    if labels.ndim == 2:
        return split_label(labels, label_id, seed_map_of(0) if seed_map_of else None)
    lead_shape = labels.shape[:-2]
    if through_z:
        frame = tuple(where[0][:-3])  # () for ZYX, (t,) for TZYX
        part = labels[frame]
        planes = [int(np.ravel_multi_index((*frame, z), lead_shape))
                  for z in range(part.shape[0])]
    else:
        frame = tuple(where[0][:-2])
        part = labels[frame]
        planes = [int(np.ravel_multi_index(frame, lead_shape))]
    seeds = [seed_map_of(i) for i in planes] if seed_map_of else [None]
    seed = None if any(m is None for m in seeds) else np.stack(seeds).reshape(part.shape)
    split = split_label(part, label_id, seed)
    out = labels.astype(split.dtype) if split.dtype != labels.dtype else labels.copy()
    # The new part's id must be unique in the whole stack, not just in this part.
    new_id = int(labels.max()) + 1
    if new_id > np.iinfo(out.dtype).max:
        out, split = out.astype(np.uint32), split.astype(np.uint32)
    out[frame] = np.where((split != part) & (split > 0), new_id, split)
    return out


def edited_objects_mask(current: np.ndarray, edited: np.ndarray) -> np.ndarray:
    """Pixels the user's edits own: every object they touched, and what they erased.

    >>> current = np.array([[1, 1, 0, 2, 2]])
    >>> edited = np.array([[False, True, False, False, False]])
    >>> edited_objects_mask(current, edited).tolist()
    [[True, True, False, False, False]]
    """
    touched = np.unique(current[edited])
    touched = touched[touched > 0]
    return np.isin(current, touched) | (edited & (current == 0))


def merge_with_locked(new: np.ndarray, current: np.ndarray, edited: np.ndarray) -> np.ndarray:
    """Recomputed labels that keep the user's edits.

    Objects the user edited (and pixels they erased) keep their current values; new objects
    that overlap them are dropped; the other new objects fill the rest, with ids above the
    kept ones so that nothing collides.

    Parameters
    ----------
    new : ndarray
        Fresh labels (e.g. from the watershed with new thresholds).
    current : ndarray
        The labels the user sees and has edited.
    edited : ndarray of bool
        Pixels the user changed.

    Examples
    --------
    The user drew object 5 by hand; a new watershed result there is dropped:

    >>> current = np.array([[5, 5, 0, 0, 1]])
    >>> new = np.array([[1, 1, 1, 0, 2]])
    >>> edited = np.array([[True, True, False, False, False]])
    >>> merge_with_locked(new, current, edited).tolist()
    [[5, 5, 0, 0, 7]]
    """
    if not edited.any():
        return new
    locked = edited_objects_mask(current, edited)
    clash = np.unique(new[locked])
    keep_new = (new > 0) & ~np.isin(new, clash[clash > 0])
    offset = int(current[locked].max()) if locked.any() else 0
    top = offset + int(new.max())
    dtype = np.uint16 if top <= np.iinfo(np.uint16).max else np.uint32
    out = np.where(locked, current, 0).astype(dtype)
    out[keep_new] = new[keep_new].astype(dtype) + offset
    return out
