"""Imaging styles (colour, dark or bright background), to balance what a model sees."""

from __future__ import annotations

import numpy as np

from .normalize import plane_scaling


def image_style(image: np.ndarray, normalization: dict) -> str:
    """Coarse imaging style of a raw image: ``color``, ``gray`` or ``gray-bright`` background.

    Used to rebalance sampling between modalities (stained tissue is rare in most sets).
    """
    if image.ndim == 3 and image.shape[-1] >= 3:
        rgb = image[..., :3]
        gray = np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])
        if not gray:
            return "color"
        image = rgb[..., 0]
    return "gray-bright" if plane_scaling(image, normalization).invert else "gray"


def style_balanced_weights(styles: list[str]) -> np.ndarray:
    """Sampling probability per image so that each style's share grows as sqrt of its size.

    A square-root rebalance, the usual compromise between sampling images uniformly (rare
    modalities barely seen) and styles uniformly (a handful of rare images seen very often).
    """
    names, inverse, counts = np.unique(styles, return_inverse=True, return_counts=True)
    per_image = np.sqrt(counts)[inverse] / counts[inverse]
    return per_image / per_image.sum()
