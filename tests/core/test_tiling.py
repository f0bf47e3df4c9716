from napari_unetseg.core.base.tiling import tile_grid


def test_tiles_cover_and_blend():
    grid = tile_grid((1000, 700), 256, 64)
    assert len(grid) == len(grid.starts_y) * len(grid.starts_x)
    (th, tw), sy, sx = grid.size, grid.starts_y, grid.starts_x
    assert th <= 256 and tw <= 256 and th % 32 == 0 and tw % 32 == 0
    # Origins on the network's stride grid; the last tile reaches the padded end.
    assert all(v % 32 == 0 for v in sy + sx)
    assert sy[0] == 0 and sy[-1] + th == 1024 and sx[-1] + tw == 704
    assert min(a + th - b for a, b in zip(sy, sy[1:])) >= 64  # overlap kept
    # Tiles are no larger than needed: 2048 px in three tiles of 768, not of 1024.
    assert tile_grid((2048, 2048), 1024, 96).size == (768, 768)
    for axis, n in ((0, 1000), (1, 700)):
        assert grid.weight_sum(axis, n).min() > 0.5
