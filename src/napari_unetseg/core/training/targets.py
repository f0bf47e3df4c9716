"""Training targets that let a network separate touching nuclei.

The 2018 Data Science Bowl winners predicted an object mask together with a border class,
so that touching nuclei are split by the border and recovered by a seeded watershed.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..base.modes import target_mode
from ..base.target_maps import (
    DEFAULT_BORDER_WIDTH,
    check_labels,
)


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
    return target_mode(mode).targets(check_labels(labels), border_width).astype(np.float32)


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
    labels = check_labels(labels)
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
