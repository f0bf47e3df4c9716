"""Which axes of an image are planes, stacks and channels."""

from __future__ import annotations

import numpy as np


def guess_axes(shape: tuple[int, ...]) -> str:
    """Guess the axes of an image from its shape (``"YX"``, ``"YXC"``, ``"ZYX"``, ...).

    A last axis of length 1..4 after at least two larger ones is taken as channels.
    """
    nd = len(shape)
    channel_last = nd >= 3 and 1 <= shape[-1] <= 4 and min(shape[-3:-1]) > 4
    if nd >= 3 and not channel_last and shape[-1] <= 16 and min(shape[-3:-1]) > 16:
        # (Y, X, 5) is an image with too many channels, not 256 planes 5 pixels wide.
        raise ValueError(
            f"image shape {tuple(shape)}: the last axis looks like {shape[-1]} channels; 1 to "
            "4 are supported (pick the channels to segment, or give the axes explicitly)"
        )
    if nd == 2:
        return "YX"
    if nd == 3:
        return "YXC" if channel_last else "ZYX"
    if nd == 4:
        return "ZYXC" if channel_last else "TZYX"
    if nd == 5 and channel_last:
        return "TZYXC"
    raise ValueError(
        f"unsupported image shape {tuple(shape)}: expected (Y,X), (Y,X,C) with C<=4, "
        "(Z,Y,X), (T,Y,X), (T,Z,Y,X) or those with a trailing channel axis"
    )


def check_axes(shape: tuple[int, ...], axes: str | None) -> str:
    """Validate user axes (or guess them); the result ends with ``YX`` or ``YXC``."""
    if 0 in tuple(shape):
        raise ValueError(f"the image is empty (shape {tuple(shape)})")
    if axes is None:
        return guess_axes(shape)
    axes = axes.upper()
    ok = (
        len(axes) == len(shape)
        and len(set(axes)) == len(axes)
        and set(axes) <= set("TZYXC")
        and (axes.endswith("YX") or axes.endswith("YXC"))
    )
    if not ok:
        raise ValueError(
            f"axes {axes!r} do not fit image shape {tuple(shape)}: give one letter per "
            "axis from T, Z, Y, X, C, ending with YX or YXC"
        )
    if axes.endswith("C") and not 1 <= shape[-1] <= 4:
        raise ValueError(f"channel axis has {shape[-1]} entries; 1 to 4 are supported")
    return axes


def planes_of(image: np.ndarray, axes: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """View an image as a sequence of 2D planes: (N, Y, X[, C]) and the stack shape."""
    has_c = axes.endswith("C")
    n_lead = len(axes) - (3 if has_c else 2)
    stack_shape = image.shape[:n_lead]
    return image.reshape(-1, *image.shape[n_lead:]), stack_shape
