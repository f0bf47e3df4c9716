"""The maps a network learns, made from instance labels: masks, borders that separate
touching nuclei (the 2018 Data Science Bowl winners' idea), centre distances.

Each :class:`.modes.TargetMode` names its builder here. scikit-image and SciPy are imported when a
map is first made, so that the modes stay cheap to import.
"""

from __future__ import annotations

import numpy as np

#: Default border thickness in pixels (see :func:`instance_border`). Chosen by validation
#: score: fine-tuning one trained model for 10 minutes per width scored 0.594 (width 2),
#: 0.598 (3) and 0.586 (4) on val.txt (``benchmarks/sweep_border_width.sh``).
DEFAULT_BORDER_WIDTH = 3


def check_labels(labels: np.ndarray) -> np.ndarray:
    """2D integer labels (bool and whole-number floats converted), or a one-line error."""
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
    labels = check_labels(labels)
    if width < 1:
        raise ValueError(f"border width must be >= 1, got {width}")
    from scipy import ndimage as ndi
    from skimage.morphology import disk
    from skimage.segmentation import find_boundaries

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
    from scipy import ndimage as ndi
    from skimage.segmentation import find_boundaries

    labels = check_labels(labels)
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


def three_class_maps(labels: np.ndarray, width: int) -> np.ndarray:
    # A partition: the border class stays inside the nuclei, so that 1 - background is the
    # mask itself (with the outer part of the band as border, every instance grew by it:
    # AP50 0.68 but mAP 0.33 on val).
    mask = labels > 0
    border = instance_border(labels, width) & mask
    return np.stack([mask & ~border, border, ~mask])


def mask_maps(labels: np.ndarray, width: int) -> np.ndarray:
    """(mask,): one sigmoid output."""
    return (labels > 0)[None]


def mask_border_maps(labels: np.ndarray, width: int) -> np.ndarray:
    """(mask, border): two sigmoid outputs."""
    return np.stack([labels > 0, instance_border(labels, width)])


def mask_border_distance_maps(labels: np.ndarray, width: int) -> np.ndarray:
    """(mask, border, centre distance): three sigmoid outputs."""
    return np.stack([labels > 0, instance_border(labels, width),
                     instance_center_distance(labels)])
