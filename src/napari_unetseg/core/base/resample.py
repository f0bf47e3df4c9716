"""Resampling of planes, probability maps and labels between pixel grids (OpenCV)."""

from __future__ import annotations

import numpy as np

# cv2.resize handles these dtypes; anything else goes through float32.
_CV2_DTYPES = (np.uint8, np.uint16, np.int16, np.float32, np.float64)


def scaled_shape(shape: tuple[int, ...], scale: float) -> tuple[int, int]:
    """(Y, X) of a plane of ``shape`` rescaled by ``scale`` (at least 1 x 1)."""
    return max(1, int(round(shape[0] * scale))), max(1, int(round(shape[1] * scale)))


def resize_plane(plane: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a (Y, X) or (Y, X, C) image to ``shape`` (Y, X).

    Area averaging when shrinking (no aliasing of fine texture), bilinear when enlarging.
    """
    import cv2

    plane = np.asarray(plane)
    if plane.shape[:2] == tuple(shape):
        return plane
    if plane.dtype.type not in _CV2_DTYPES:
        plane = plane.astype(np.float32)
    shrink = shape[0] * shape[1] < plane.shape[0] * plane.shape[1]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(plane), (shape[1], shape[0]), interpolation=interp)
    if plane.ndim == 3 and out.ndim == 2:  # cv2 drops a single channel axis
        out = out[..., None]
    return out


def resize_maps(maps: np.ndarray, shape: tuple[int, int], out: np.ndarray | None = None):
    """Resize (C, Y, X) float maps to (C, *shape), into ``out`` when given."""
    if out is None:
        out = np.empty((maps.shape[0], *shape), np.float32)
    for c in range(maps.shape[0]):
        out[c] = resize_plane(maps[c].astype(np.float32, copy=False), shape)
    return out


def resize_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label image (pixel centres sampled, ids unchanged)."""
    h, w = labels.shape[:2]
    iy = np.minimum(((np.arange(shape[0]) + 0.5) * h / shape[0]).astype(np.intp), h - 1)
    ix = np.minimum(((np.arange(shape[1]) + 0.5) * w / shape[1]).astype(np.intp), w - 1)
    return labels[np.ix_(iy, ix)]


__all__ = ["resize_labels", "resize_maps", "resize_plane", "scaled_shape"]
