"""The 2018 Data Science Bowl instance-segmentation metric."""

from __future__ import annotations

import numpy as np

#: IoU thresholds of the competition metric: 0.50, 0.55, ..., 0.95.
IOU_THRESHOLDS = np.round(np.arange(0.5, 1.0, 0.05), 2)


def _compact(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ids present (sorted) and each pixel's index among them, as ``np.unique`` gives.

    By counting instead of sorting when the ids are small non-negative integers: threshold
    tuning calls this hundreds of times, and a sort holds the interpreter's lock throughout.
    """
    if labels.size and labels.dtype.kind in "ui" and labels.min() >= 0 and (
            int(labels.max()) < 4 * labels.size + 1024):
        ids = np.flatnonzero(np.bincount(labels))
        lut = np.zeros(int(ids[-1]) + 1, np.int64)
        lut[ids] = np.arange(ids.size)
        return ids, lut[labels]
    return np.unique(labels, return_inverse=True)


def iou_matrix(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """IoU between every ground-truth object (rows) and every predicted object (columns).

    Labels are compacted first, so arbitrary ids are fine; background (0) is excluded.
    """
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"label shapes differ: ground truth {gt.shape}, prediction {pred.shape}")
    g_ids, g = _compact(gt.ravel())
    p_ids, p = _compact(pred.ravel())
    g_has_bg, p_has_bg = g_ids[0] == 0, p_ids[0] == 0
    ng, np_ = g_ids.size, p_ids.size
    inter = np.bincount(g * np_ + p, minlength=ng * np_).reshape(ng, np_)
    area_g, area_p = inter.sum(1), inter.sum(0)
    union = area_g[:, None] + area_p[None, :] - inter
    iou = inter / np.maximum(union, 1)
    return iou[int(g_has_bg) :, int(p_has_bg) :]


#: Above this many (ground truth x prediction) pairs, IoUs are computed for overlapping pairs
#: only (a dense matrix of 50 000 x 50 000 objects would need 20 GB).
DENSE_PAIRS = 2**25


def overlap_ious(gt: np.ndarray, pred: np.ndarray) -> tuple[int, int, np.ndarray]:
    """Object counts and the IoU of every overlapping (ground truth, prediction) pair.

    Memory grows with the pixels, not with the product of the object counts, so whole
    slides and volumes with tens of thousands of objects can be scored.
    """
    gt, pred = np.asarray(gt).ravel(), np.asarray(pred).ravel()
    if gt.shape != pred.shape:
        raise ValueError(f"label shapes differ: ground truth {gt.shape}, prediction {pred.shape}")
    g_ids, g = _compact(gt)
    p_ids, p = _compact(pred)
    g0, p0 = int(g_ids[0] == 0), int(p_ids[0] == 0)
    area_g = np.bincount(g, minlength=g_ids.size)
    area_p = np.bincount(p, minlength=p_ids.size)
    both = (g >= g0) & (p >= p0)
    if g0:
        both &= g > 0
    if p0:
        both &= p > 0
    pairs, inter = np.unique(g[both].astype(np.int64) * p_ids.size + p[both],
                             return_counts=True)
    gi, pi = np.divmod(pairs, p_ids.size)
    iou = inter / (area_g[gi] + area_p[pi] - inter)
    return g_ids.size - g0, p_ids.size - p0, iou


def image_scores(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """TP / (TP + FP + FN) at each IoU threshold of :data:`IOU_THRESHOLDS` for one image.

    A prediction matches a nucleus when their IoU exceeds the threshold; above 0.5 a match
    is unique, so no assignment step is needed. Empty ground truth and empty prediction
    score 1; one of them empty scores 0. Works on 2D images and on volumes (voxels).

    >>> gt = np.array([[1, 1, 1, 1, 0, 2, 2, 2, 2]])
    >>> pred = np.array([[1, 1, 1, 0, 0, 0, 0, 0, 0]])  # one nucleus found, IoU 0.75
    >>> image_scores(gt, pred)[[0, 5, 6]].round(2).tolist()  # at IoU 0.5, 0.75, 0.8
    [0.5, 0.0, 0.0]
    """
    gt, pred = np.asarray(gt), np.asarray(pred)
    # The largest ids bound the object counts, without a sort (tuning calls this a lot).
    big = gt.size and float(gt.max()) * float(pred.max()) > DENSE_PAIRS
    if big:
        n_gt, n_pred, iou = overlap_ious(gt, pred)
    else:
        iou = iou_matrix(gt, pred)
        n_gt, n_pred = iou.shape
    if n_gt == 0 and n_pred == 0:
        return np.ones(IOU_THRESHOLDS.size)
    scores = []
    for t in IOU_THRESHOLDS:
        tp = int((iou > t).sum())
        scores.append(tp / (n_gt + n_pred - tp))
    return np.asarray(scores)


def summarize(per_image: list[np.ndarray]) -> dict[str, float]:
    """Dataset scores from per-image threshold scores: mAP_50_95, AP50 and AP75.

    >>> summarize([np.linspace(1, 0, 10), np.ones(10)])["AP50"]
    1.0
    """
    if not per_image:
        return {"mAP_50_95": float("nan"), "AP50": float("nan"), "AP75": float("nan")}
    s = np.stack(per_image)
    return {
        "mAP_50_95": float(s.mean()),
        "AP50": float(s[:, 0].mean()),
        "AP75": float(s[:, 5].mean()),
    }


def evaluate_folders(gt_dir, pred_dir) -> tuple[dict, list[dict]]:
    """Score predicted label files against ground truth, matched by file stem.

    A missing prediction scores 0 for its image. Returns the summary (``mAP_50_95``,
    ``AP50``, ``AP75``, ``images``, ``missing_predictions``, ``objects_true``,
    ``objects_predicted``) and one row per image (with its object counts).
    """
    from ..io.images import ImageReadError, is_label_tiff, list_images, read_labels

    gts = {p.stem: p for p in list_images(gt_dir)}
    if not gts:
        raise ImageReadError(f"{gt_dir}: no label images")
    preds = {p.stem: p for p in list_images(pred_dir)}
    # Label files written by unetseg that match no ground truth mean mixed-up folders (maps
    # files and other images beside them are ignored).
    orphans = sorted(s for s in set(preds) - set(gts) if is_label_tiff(preds[s]))
    if orphans:
        raise ImageReadError(
            f"{len(orphans)} prediction(s) in {pred_dir} have no ground truth in {gt_dir} "
            f"(e.g. {preds[orphans[0]].name}); are --gt and --pred the right folders?")
    per, rows, missing = [], [], 0
    totals = {"true": 0, "predicted": 0}
    for stem in sorted(gts):
        gt = read_labels(gts[stem])
        n_true, n_pred = _object_count(gt), 0
        if gt.size and gt.min() < 0:
            raise ImageReadError(f"{gts[stem]}: ground truth has negative labels")
        if stem in preds:
            pred = read_labels(preds[stem])
            if pred.shape != gt.shape:
                raise ImageReadError(f"{preds[stem]}: shape {pred.shape} differs from its ground "
                                     f"truth {gts[stem].name} {gt.shape}")
            if pred.size and pred.min() < 0:
                raise ImageReadError(f"{preds[stem]}: prediction has negative labels")
            s = image_scores(gt, pred)
            n_pred = _object_count(pred)
        else:
            s = np.zeros(IOU_THRESHOLDS.size)
            missing += 1
        per.append(s)
        totals["true"] += n_true
        totals["predicted"] += n_pred
        rows.append({"image": stem, "mAP_50_95": float(s.mean()), "AP50": float(s[0]),
                     "AP75": float(s[5]), "objects_true": n_true, "objects_predicted": n_pred,
                     "missing": stem not in preds})
    summary = summarize(per)
    summary.update(images=len(gts), missing_predictions=missing,
                   objects_true=totals["true"], objects_predicted=totals["predicted"])
    return summary, rows


def _object_count(labels: np.ndarray) -> int:
    """Distinct non-zero ids."""
    ids = np.unique(labels)
    return int(np.count_nonzero(ids))
