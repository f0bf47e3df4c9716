"""Label arrays' dtype: the smallest unsigned integer that holds the ids."""

from __future__ import annotations

import numpy as np


def label_dtype(max_label: int) -> np.dtype:
    """uint16 when the labels fit (what ImageJ shows), else uint32, else uint64."""
    for dtype in (np.uint16, np.uint32):
        if max_label <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)
