"""Stain, colour and camera augmentation on the real tissue sample."""

import numpy as np

from napari_unetseg.core.training.augment import (
    degrade_normalized,
    hed_jitter,
    random_colour_transform,
    restain,
    stain_shift,
)


def test_hed_jitter_without_change_keeps_the_colours(tissue):
    rgb = tissue[0][..., :3].astype(np.float32) / 255
    same = hed_jitter(rgb, np.ones(3), np.zeros(3))
    assert np.abs(same - rgb).mean() < 0.01


def test_less_haematoxylin_makes_nuclei_paler(tissue):
    image, labels = tissue
    rgb = image[..., :3].astype(np.float32) / 255
    pale = hed_jitter(rgb, np.array([0.5, 1.0, 1.0]), np.zeros(3))
    nuclei = labels > 0
    # Nuclei (haematoxylin) get brighter; the background barely changes.
    assert pale[nuclei].mean() > rgb[nuclei].mean() + 0.03
    assert abs(pale[~nuclei].mean() - rgb[~nuclei].mean()) < pale[nuclei].mean() - rgb[
        nuclei].mean()


def test_stain_shift_is_fixed_by_its_seed_and_changes_colour(tissue):
    rgb = tissue[0][..., :3]
    a, b = stain_shift(rgb, 0), stain_shift(rgb, 0)
    assert a.dtype == np.uint8 and a.shape == rgb.shape and np.array_equal(a, b)
    assert np.abs(a.astype(int) - rgb).mean() > 5


def test_restain_with_the_h_and_e_colours_keeps_the_image_and_new_dyes_recolour_nuclei(tissue):
    from skimage.color import rgb_from_hed

    image, labels = tissue
    rgb = image[..., :3]
    same = restain(rgb, tuple(rgb_from_hed[0]), tuple(rgb_from_hed[1]))
    assert np.abs(same.astype(int) - rgb).max() <= 2
    # The default new stain: nuclei green-dark instead of purple (red absorbed, not green).
    new = restain(rgb).astype(float)
    nuclei = labels > 0
    assert new[nuclei][:, 1].mean() > new[nuclei][:, 0].mean() + 10
    assert rgb[nuclei][:, 1].mean() < rgb[nuclei][:, 0].mean()


def test_gray_images_keep_their_pixels_and_degradation_keeps_shape(fluo):
    rng = np.random.default_rng(0)
    gray = fluo[0][..., None].astype(np.float32) / 255
    assert random_colour_transform(rng, colour=False)(gray) is gray
    x = np.repeat(gray[None, :64, :64, 0], 3, 0)
    for _ in range(20):
        y = degrade_normalized(x, rng)
        assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
