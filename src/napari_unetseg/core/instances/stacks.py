"""One id per nucleus through a stack: per-plane objects linked through Z, and over time.

Both are overlap matchings between consecutive planes (or frames), one-to-one, best overlap
first. Written here rather than taken from a tracking library: the rule is the few lines
below, and the result must stay a plain label array that the watershed sliders can redo.
"""

from __future__ import annotations

import numpy as np

from ..base.labels import label_dtype


def _overlaps(a: np.ndarray, b: np.ndarray):
    """Ids of a and b, their pixel counts, and the overlap counts of every pair that touches."""
    a, b = a.ravel(), b.ravel()
    both = (a > 0) & (b > 0)
    pairs, inter = np.unique(np.stack([a[both], b[both]]), axis=1, return_counts=True)
    ida, area_a = np.unique(a[a > 0], return_counts=True)
    idb, area_b = np.unique(b[b > 0], return_counts=True)
    return pairs, inter, dict(zip(ida.tolist(), area_a.tolist())), dict(zip(idb.tolist(),
                                                                          area_b.tolist()))


def match_objects(previous: np.ndarray, current: np.ndarray, *, min_iou: float = 0.0,
                  by: str = "iou") -> dict[int, int]:
    """One-to-one matches ``current id -> previous id`` between two label arrays.

    Pairs are taken best first (by IoU, or by overlap in pixels with ``by="overlap"``);
    each id is used once; pairs below ``min_iou`` are not matched.
    """
    pairs, inter, area_p, area_c = _overlaps(previous, current)
    if pairs.size == 0:
        return {}
    union = np.array([area_p[p] + area_c[c] for p, c in pairs.T.tolist()]) - inter
    iou = inter / union
    score = iou if by == "iou" else inter.astype(float) + iou * 1e-6
    matches: dict[int, int] = {}
    used: set[int] = set()
    for k in np.argsort(-score, kind="stable"):
        p, c = int(pairs[0, k]), int(pairs[1, k])
        if iou[k] < min_iou or c in matches or p in used:
            continue
        matches[c] = p
        used.add(p)
    return matches


def keep_ids(labels: np.ndarray, previous: np.ndarray, min_iou: float = 0.5) -> np.ndarray:
    """``labels`` with the ids of ``previous`` for every object that is nearly the same.

    An object whose IoU with an object of ``previous`` exceeds ``min_iou`` (at least 0.5,
    so that each object has at most one such partner and no sorting is needed) takes that
    object's id; the other objects take the smallest ids that ``previous`` does not use.
    When a slider moves, nuclei that did not change keep their colour, and the ones that
    split or merged get new colours, so they stand out.

    Examples
    --------
    >>> import numpy as np
    >>> old = np.array([[1, 1, 0, 2, 2]])
    >>> new = np.array([[2, 2, 0, 1, 3]])
    >>> keep_ids(new, old).tolist()
    [[1, 1, 0, 3, 4]]
    """
    labels, previous = np.asarray(labels), np.asarray(previous)
    if labels.shape != previous.shape or not labels.any() or not previous.any():
        return labels
    if min_iou < 0.5:
        raise ValueError(f"min_iou must be 0.5 or more for a unique match, got {min_iou}")
    a, b = labels.ravel(), previous.ravel()
    n_new, n_old = int(a.max()), int(b.max())
    if max(n_new, n_old) > 4 * a.size:  # sparse ids: count only the ids present
        return _keep_ids_sparse(labels, previous, min_iou)
    if a.dtype.itemsize >= 8:  # bincount takes no uint64; these ids fit int64 here
        a = a.astype(np.int64)
    if b.dtype.itemsize >= 8:
        b = b.astype(np.int64)
    area_new = np.bincount(a, minlength=n_new + 1).astype(np.int64)
    area_old = np.bincount(b, minlength=n_old + 1).astype(np.int64)
    both = (a > 0) & (b > 0)
    keys = a[both].astype(np.int64) * (n_old + 1) + b[both].astype(np.int64)
    if (n_new + 1) * (n_old + 1) <= 1 << 24:
        inter = np.bincount(keys, minlength=(n_new + 1) * (n_old + 1)).reshape(
            n_new + 1, n_old + 1)
        best = inter.argmax(axis=1)
        best_inter = inter[np.arange(n_new + 1), best]
    else:
        uniq, counts = np.unique(keys, return_counts=True)
        best = np.zeros(n_new + 1, np.int64)
        best_inter = np.zeros(n_new + 1, np.int64)
        order = np.argsort(counts, kind="stable")  # the largest overlap is written last
        best[uniq[order] // (n_old + 1)] = uniq[order] % (n_old + 1)
        best_inter[uniq[order] // (n_old + 1)] = counts[order]
    union = area_new + area_old[best] - best_inter
    matched = (best_inter > 0) & (best_inter > min_iou * np.maximum(union, 1))
    matched[0] = False
    return _apply_ids(labels, area_new > 0, matched, best, area_old > 0)


def _apply_ids(labels, present, matched, best, used) -> np.ndarray:
    """Relabel: matched ids to their partners, the others to the smallest ids not ``used``."""
    lut = np.zeros(present.size, np.int64)
    lut[matched] = best[matched]
    todo = np.flatnonzero(present & ~matched)
    todo = todo[todo > 0]
    taken = np.zeros(used.size + todo.size + 2, bool)
    taken[: used.size] = used
    taken[0] = True
    lut[todo] = np.flatnonzero(~taken)[: todo.size]
    out = lut[labels]
    return out.astype(label_dtype(int(out.max())), copy=False)


def _keep_ids_sparse(labels, previous, min_iou) -> np.ndarray:
    """:func:`keep_ids` for labels whose ids are far larger than their count."""
    from skimage.segmentation import relabel_sequential

    new, _, _ = relabel_sequential(labels)
    old, _, back = relabel_sequential(previous)
    kept = keep_ids(new, old, min_iou).astype(np.int64)
    # Ids taken from ``previous`` (the compact ones it uses) go back to their own values;
    # new objects keep the small ids they were given.
    lut = np.arange(int(kept.max()) + 1, dtype=np.int64)
    taken = np.arange(1, min(int(old.max()), lut.size - 1) + 1)
    lut[taken] = np.asarray(back[taken], np.int64)
    out = lut[kept]
    return out.astype(label_dtype(int(out.max())), copy=False)


def _relink(planes: np.ndarray, min_iou: float, by: str) -> np.ndarray:
    """Give each object of plane k the id of its match in plane k-1 (new ids otherwise)."""
    out = np.zeros(planes.shape, np.int64)
    next_id = 1
    for k in range(planes.shape[0]):
        cur = planes[k]
        ids = np.unique(cur[cur > 0])
        new = match_objects(out[k - 1], cur, min_iou=min_iou, by=by) if k > 0 else {}
        for c in ids.tolist():
            if c not in new:
                new[c] = next_id
                next_id += 1
        lut = np.zeros(int(ids.max()) + 1 if ids.size else 1, np.int64)
        for c, v in new.items():
            lut[c] = v
        out[k] = lut[cur]
    return out.astype(label_dtype(int(out.max()) if out.size else 0))


def stitch_planes(labels: np.ndarray, iou_threshold: float = 0.25) -> np.ndarray:
    """Link per-plane objects of a (Z, Y, X) stack into 3D objects by their overlap.

    An object continues the object of the plane above with which it has the highest IoU
    (at least ``iou_threshold``), each object continuing at most one; otherwise it starts a
    new 3D object.

    >>> planes = np.array([[[1, 1, 0, 2]], [[0, 3, 3, 0]]])  # 3 overlaps 1 (IoU 1/3)
    >>> stitch_planes(planes)[1].tolist()
    [[0, 1, 1, 0]]

    Parameters
    ----------
    labels : ndarray
        (Z, Y, X) labels; ids need not be unique across planes.
    iou_threshold : float
        Smallest IoU between consecutive planes for two objects to be one.

    Returns
    -------
    ndarray
        (Z, Y, X) labels, one id per 3D object, uint16 or larger.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"stitching needs (Z, Y, X) labels, got shape {labels.shape}")
    if not 0 <= iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    return _relink(labels, iou_threshold, "iou")


def link_over_time(labels: np.ndarray, min_iou: float = 0.0) -> np.ndarray:
    """Keep each object's id through a time-lapse: (T, Y, X) or (T, Z, Y, X) labels.

    Each object takes the id of the object of the previous frame it overlaps most (one
    object per id); objects that overlap nothing, or only objects already taken, get new ids.
    """
    labels = np.asarray(labels)
    if labels.ndim not in (3, 4):
        raise ValueError(f"linking over time needs (T, Y, X) or (T, Z, Y, X) labels, got "
                         f"shape {labels.shape}")
    return _relink(labels, min_iou, "overlap")


def link_stack(labels: np.ndarray, axes: str, *, stitch: bool = False, track: bool = False,
               iou_threshold: float = 0.25) -> np.ndarray:
    """Apply :func:`stitch_planes` along Z (per frame) and/or :func:`link_over_time` along T.

    Parameters
    ----------
    labels : ndarray
        Labels with axes ``axes`` (``"YX"``, ``"ZYX"``, ``"TYX"`` or ``"TZYX"``).
    """
    axes = axes.upper()
    if stitch and "Z" in axes:
        if "T" in axes:
            frames = [stitch_planes(f, iou_threshold) for f in labels]
            # Ids unique over the whole time-lapse before linking (or as the result).
            offset, out = 0, []
            for f in frames:
                out.append(np.where(f > 0, f.astype(np.int64) + offset, 0))
                offset += int(f.max())
            labels = np.stack(out)
        else:
            labels = stitch_planes(labels, iou_threshold)
    if track and "T" in axes:
        labels = link_over_time(labels)
    return labels.astype(label_dtype(int(labels.max()) if labels.size else 0), copy=False)


__all__ = ["keep_ids", "link_over_time", "link_stack", "match_objects", "stitch_planes"]
