"""Tile layout for inference: tile sizes and origins, and the windows that blend them."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TileGrid:
    """Tile origins along Y and X and the separable blending windows."""

    size: tuple[int, int]
    starts_y: tuple[int, ...]
    starts_x: tuple[int, ...]
    overlap: int

    def windows(self, axis: int) -> list[np.ndarray]:
        starts = self.starts_y if axis == 0 else self.starts_x
        return [
            _window(self.size[axis], self.overlap, first=i == 0, last=i == len(starts) - 1)
            for i in range(len(starts))
        ]

    def weight_sum(self, axis: int, length: int) -> np.ndarray:
        starts = self.starts_y if axis == 0 else self.starts_x
        total = np.zeros(length, np.float32)
        for s, w in zip(starts, self.windows(axis)):
            part = total[s : s + w.size]
            part += w[: part.size]
        return total

    def __iter__(self) -> Iterator[tuple[int, int, int, int]]:
        for iy, y in enumerate(self.starts_y):
            for ix, x in enumerate(self.starts_x):
                yield iy, ix, y, x

    def __len__(self) -> int:
        return len(self.starts_y) * len(self.starts_x)


def _axis_tiles(
    length: int, tile: int, overlap: int, align: int = 32
) -> tuple[int, tuple[int, ...]]:
    """Tile size and origins along one axis, on the axis padded to a multiple of ``align``.

    Origins and sizes are multiples of ``align`` (the network's total stride), so that every
    tile samples its deepest features on the same grid as the whole image would; neighbours
    overlap by at least ``overlap``. As few tiles as fit ``tile``, each only as large as
    needed, spread evenly: a 2048-pixel axis takes three 768-pixel tiles rather than three
    of 1024 (78 % more pixels computed).
    """
    padded = align * math.ceil(length / align)
    tile = max(align, tile // align * align)
    if padded <= tile:
        return padded, (0,)
    n = math.ceil((padded - overlap) / (tile - overlap))
    while True:
        size = min(tile, align * math.ceil((padded + (n - 1) * overlap) / n / align))
        starts = tuple(align * round(i * (padded - size) / (n - 1) / align) for i in range(n))
        if all(a + size - b >= overlap for a, b in zip(starts, starts[1:])):
            return size, starts
        n += 1  # rounding to the grid ate into an overlap: one more tile


def _window(size: int, overlap: int, first: bool, last: bool) -> np.ndarray:
    """1D blending weights of one tile.

    Near a tile's inner edges the network lacks context (for the bundled model, outputs
    differ from a whole-image pass by up to 0.15 at 32 px inside and 0.09 at 128 px:
    benchmarks/bench_tile_reach.py). Each pair of neighbours therefore
    hands over in the middle of their overlap: zero weight over the outer
    ``(overlap - ramp) / 2`` pixels, then a short cosine ramp whose two halves sum to one.
    """
    w = np.ones(size, np.float32)
    ramp = min(16, overlap // 2)
    if ramp > 0:
        margin = (overlap - ramp) // 2
        up = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
        edge = np.concatenate([np.zeros(margin), up]).astype(np.float32)
        if not first:
            w[: edge.size] = edge
        if not last:
            w[size - edge.size :] = edge[::-1]
    return w


def tile_grid(shape: tuple[int, int], tile: int, overlap: int, align: int = 32) -> TileGrid:
    """Tiles of at most ``tile`` pixels covering ``shape``, overlapping by ``overlap``.

    Tiles at the far edges may reach past the image (by less than ``align``); those pixels
    are filled by reflection, as a whole-image pass pads them.

    >>> grid = tile_grid((1000, 600), tile=512, overlap=64)
    >>> grid.size, len(list(grid))
    ((384, 352), 6)
    """
    if tile < 32:
        raise ValueError(f"tile size must be at least 32 pixels, got {tile}")
    overlap = int(min(max(overlap, 0), tile // 2))
    size_y, starts_y = _axis_tiles(shape[0], tile, overlap, align)
    size_x, starts_x = _axis_tiles(shape[1], tile, overlap, align)
    return TileGrid((size_y, size_x), starts_y, starts_x, overlap=overlap)
