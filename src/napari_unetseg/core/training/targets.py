"""Training targets that let a network separate touching nuclei.

The 2018 Data Science Bowl winners predicted an object mask together with a border class,
so that touching nuclei are split by the border and recovered by a seeded watershed.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import disk
from skimage.segmentation import find_boundaries

#: Default border thickness in pixels (see :func:`instance_border`). Chosen by validation
#: score: fine-tuning one trained model for 10 minutes per width scored 0.594 (width 2),
#: 0.598 (3) and 0.586 (4) on val.txt (``benchmarks/sweep_border_width.sh``).
DEFAULT_BORDER_WIDTH = 3


def _check_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a 2D array, got shape {labels.shape}")
    if labels.dtype == bool:
        return labels.astype(np.uint8)
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise ValueError("float labels must hold whole numbers")
        return labels.astype(np.int64)
    return labels


def instance_border(labels: np.ndarray, width: int = DEFAULT_BORDER_WIDTH) -> np.ndarray:
    """Pixels at and around the edges of every instance.

    The inner edge of each object (its pixels touching background or another object) is
    dilated by a disk of radius ``width - 1``. Where two nuclei touch, their two inner edges
    meet, so the band between them is about ``2 * width`` pixels wide and separates them.

    Parameters
    ----------
    labels : ndarray
        2D instance labels, 0 = background, any integer dtype (or bool).
    width : int
        Border thickness (>= 1).

    Returns
    -------
    ndarray of bool
    """
    labels = _check_labels(labels)
    if width < 1:
        raise ValueError(f"border width must be >= 1, got {width}")
    edges = find_boundaries(labels, connectivity=1, mode="inner") & (labels > 0)
    if width > 1:
        edges = ndi.binary_dilation(edges, structure=disk(width - 1))
    return edges


def instance_center_distance(labels: np.ndarray) -> np.ndarray:
    """Distance to each instance's own edge, scaled to 1 at its centre.

    Touching nuclei are measured separately (the pixels where they meet count as edge), so
    the target of two touching nuclei has two peaks however thin the contact: it describes
    their shape, where the border describes only the contact.

    Parameters
    ----------
    labels : ndarray
        2D instance labels.

    Returns
    -------
    ndarray
        float32 in [0, 1], 0 on background.
    """
    labels = _check_labels(labels)
    inside = (labels > 0) & ~find_boundaries(labels, connectivity=1, mode="inner")
    dist = ndi.distance_transform_edt(inside).astype(np.float32)
    # Edge pixels get distance 0 above; +1 keeps every instance pixel positive, so that even
    # instances of one or two pixels have a centre of 1.
    dist[labels > 0] += 1
    # Ids may be sparse or large: work on their ranks.
    ids, rank = np.unique(labels, return_inverse=True)
    rank = rank.reshape(labels.shape)
    peak = np.asarray(ndi.maximum(dist, rank, index=np.arange(ids.size)), np.float32)
    peak[peak == 0] = 1
    return dist / peak[rank]


def make_targets(
    labels: np.ndarray, mode: str = "mask_border", border_width: int = DEFAULT_BORDER_WIDTH
) -> np.ndarray:
    """Target maps for one label image.

    Parameters
    ----------
    labels : ndarray
        2D instance labels.
    mode : {"mask_border", "three_class", "mask_border_distance", "binary"}
        ``mask_border``: (mask, border) for two sigmoid outputs. ``three_class``: one-hot
        (mask - border, border, background) for a softmax. ``mask_border_distance``: (mask,
        border, :func:`instance_center_distance`) for three sigmoid outputs. ``binary``:
        (mask,).
    border_width : int
        See :func:`instance_border`.

    Returns
    -------
    ndarray
        float32, (C, Y, X).
    """
    from ..base.modes import target_mode

    target_mode(mode)  # a one-line error for unknown modes
    labels = _check_labels(labels)
    return _TARGET_BUILDERS[mode](labels, border_width).astype(np.float32)


def _three_class(labels: np.ndarray, width: int) -> np.ndarray:
    # A partition: the border class stays inside the nuclei, so that 1 - background is the
    # mask itself (with the outer part of the band as border, every instance grew by it:
    # AP50 0.68 but mAP 0.33 on val).
    mask = labels > 0
    border = instance_border(labels, width) & mask
    return np.stack([mask & ~border, border, ~mask])


#: How each target mode of :mod:`.modes` is made from instance labels.
_TARGET_BUILDERS = {
    "binary": lambda lab, w: (lab > 0)[None],
    "mask_border": lambda lab, w: np.stack([lab > 0, instance_border(lab, w)]),
    "mask_border_distance": lambda lab, w: np.stack(
        [lab > 0, instance_border(lab, w), instance_center_distance(lab)]),
    "three_class": _three_class,
}


def unet_weight_map(
    labels: np.ndarray, w0: float = 10.0, sigma: float = 5.0, balance: bool = True
) -> np.ndarray:
    """The U-Net paper's pixel weights: class balance plus emphasis on gaps between objects.

    ``w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 sigma**2))`` on background pixels, with
    ``d1``, ``d2`` the distances to the nearest and second-nearest object (Ronneberger et al.,
    2015, eq. 2).

    Parameters
    ----------
    labels : ndarray
        2D instance labels.
    w0, sigma : float
        Strength and reach of the gap term.
    balance : bool
        Add class-frequency balancing ``w_c`` (otherwise ``w_c = 1``).

    Returns
    -------
    ndarray
        float32 (Y, X).
    """
    labels = _check_labels(labels)
    mask = labels > 0
    weights = np.ones(labels.shape, np.float32)
    if balance and mask.any() and (~mask).any():
        fg = mask.mean()
        weights[mask] = 0.5 / fg
        weights[~mask] = 0.5 / (1 - fg)
    # Beyond ~5 sigma the gap term is < exp(-12.5) * w0: distances are only needed that far,
    # so each object's distance map is computed in its padded bounding box only. scipy has no
    # "two nearest objects" transform, hence the loop.
    reach = int(np.ceil(5 * sigma))
    d1 = np.full(labels.shape, np.inf, np.float32)
    d2 = np.full(labels.shape, np.inf, np.float32)
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        y0 = max(sl[0].start - reach, 0)
        y1 = min(sl[0].stop + reach, labels.shape[0])
        x0 = max(sl[1].start - reach, 0)
        x1 = min(sl[1].stop + reach, labels.shape[1])
        crop = labels[y0:y1, x0:x1] != i
        d = ndi.distance_transform_edt(crop).astype(np.float32)
        a, b = d1[y0:y1, x0:x1], d2[y0:y1, x0:x1]
        nearer = d < a
        b[:] = np.where(nearer, a, np.minimum(b, d))
        a[:] = np.where(nearer, d, a)
    gap = w0 * np.exp(-((d1 + d2) ** 2) / (2 * sigma**2))
    weights[~mask] += gap[~mask]
    return weights
