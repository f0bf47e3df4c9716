"""Photometric augmentation for stains, microscopes and cameras the training set lacks.

Two stages, because they act on different numbers:

- :func:`random_colour_transform` acts on the *raw* colours (RGB in [0, 1]), before the
  plane's normalization: stain amounts in HED space (Ruifrok & Johnston's colour
  deconvolution, ``skimage.color.rgb2hed``), hue and saturation, and random grayscale. The
  same transform is applied to a subsample of the whole image, so that the crop is normalized
  with the percentiles of the *augmented whole image*, as inference would do.
- :func:`degrade_normalized` acts on the normalized network input: contrast, brightness,
  gamma, blur, noise and JPEG compression.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

ColourTransform = Callable[[np.ndarray], np.ndarray]


def hed_jitter(rgb: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Change the amounts of haematoxylin, eosin and DAB in an RGB image.

    Each stain concentration ``c`` becomes ``alpha * c + beta`` (Tellez et al., 2018), with
    the stain vectors of ``skimage.color`` (Ruifrok & Johnston). The concentrations are
    taken in optical density without clipping them at zero (as ``rgb2hed``/``hed2rgb`` do),
    so that ``alpha = 1, beta = 0`` gives the image back exactly.

    Parameters
    ----------
    rgb : ndarray
        (Y, X, 3) float in [0, 1].
    alpha, beta : ndarray
        Three factors and three offsets, in the order H, E, D.

    Returns
    -------
    ndarray
        (Y, X, 3) float32 in [0, 1].
    """
    from skimage.color import hed_from_rgb, rgb_from_hed

    od = -np.log(np.clip(rgb, 1e-6, 1).astype(np.float32))
    conc = od @ hed_from_rgb.astype(np.float32)
    conc = conc * np.asarray(alpha, np.float32) + np.asarray(beta, np.float32)
    return np.clip(np.exp(-(conc @ rgb_from_hed.astype(np.float32))), 0, 1)


def hue_saturation(rgb: np.ndarray, hue_shift: float, saturation: float) -> np.ndarray:
    """Rotate the hue by ``hue_shift`` turns and scale the saturation (RGB in [0, 1])."""
    import cv2

    hsv = cv2.cvtColor(np.ascontiguousarray(rgb, np.float32), cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0] + 360.0 * hue_shift) % 360.0
    hsv[..., 1] = np.clip(hsv[..., 1] * saturation, 0, 1)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def random_colour_transform(rng: np.random.Generator, colour: bool) -> ColourTransform:
    """Draw one random raw-colour transform (apply it to a crop and its whole image alike).

    Parameters
    ----------
    rng : numpy Generator
    colour : bool
        Whether the image is colour (stain and hue changes apply) or gray (identity).

    Returns
    -------
    callable
        Maps (Y, X, C) float32 in [0, 1] to the same shape.
    """
    if not colour:
        return lambda x: x
    steps: list[ColourTransform] = []
    if rng.random() < 0.8:
        alpha = rng.uniform(0.6, 1.4, 3)
        beta = rng.uniform(-0.03, 0.03, 3)
        steps.append(lambda x: hed_jitter(x, alpha, beta))
    if rng.random() < 0.5:
        hue, sat = rng.uniform(-0.08, 0.08), float(np.exp(rng.uniform(np.log(0.6), np.log(1.5))))
        steps.append(lambda x: hue_saturation(x, hue, sat))
    if rng.random() < 0.15:
        steps.append(lambda x: np.repeat(x.mean(axis=-1, keepdims=True), x.shape[-1], -1))

    def apply(x: np.ndarray) -> np.ndarray:
        if x.shape[-1] != 3:
            return x
        for step in steps:
            x = step(x)
        return x

    return apply


def stain_shift(rgb: np.ndarray, seed: int = 0) -> np.ndarray:
    """A fixed, strong stain and colour change: the robustness benchmark's "other lab".

    Parameters
    ----------
    rgb : ndarray
        (Y, X, 3) uint8 or float in [0, 1].
    seed : int
        Picks the shift (the same seed gives the same shift for every image).

    Returns
    -------
    ndarray
        (Y, X, 3) uint8.
    """
    rng = np.random.default_rng(seed)
    x = np.asarray(rgb, np.float32)
    if np.asarray(rgb).dtype == np.uint8:
        x = x / 255.0
    alpha = rng.choice([-1.0, 1.0], 3) * rng.uniform(0.25, 0.4, 3) + 1.0
    beta = rng.uniform(-0.02, 0.02, 3)
    x = hed_jitter(x, alpha, beta)
    x = hue_saturation(x, rng.choice([-1.0, 1.0]) * rng.uniform(0.04, 0.07),
                       rng.uniform(0.65, 0.8))
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


#: Colours (RGB absorbance directions) of a stain pair the training set and the augmentation
#: lack: a green nuclear stain (methyl-green-like) on a cyan-blue counterstain.
NOVEL_STAIN = ((0.9, 0.2, 0.6), (0.1, 0.6, 0.7))


def restain(rgb: np.ndarray, nucleus: tuple = NOVEL_STAIN[0],
            counterstain: tuple = NOVEL_STAIN[1]) -> np.ndarray:
    """Render an H&E image as if stained with other dyes: the fine-tuning benchmark's new stain.

    The haematoxylin and eosin amounts (colour deconvolution with ``skimage.color``'s
    vectors) are drawn again with the absorbance colours ``nucleus`` and ``counterstain``.
    Unlike :func:`stain_shift`, the result lies outside what :func:`random_colour_transform`
    produces (hue changes of at most 0.08 turns), as a lab's own stain would.

    Parameters
    ----------
    rgb : ndarray
        (Y, X, 3) uint8.
    nucleus, counterstain : tuple of 3 floats
        Optical density per unit of stain in R, G, B (normalized here).

    Returns
    -------
    ndarray
        (Y, X, 3) uint8.
    """
    from skimage.color import hed_from_rgb, rgb_from_hed

    od = -np.log(np.clip(np.asarray(rgb, np.float32) / 255.0, 1e-6, 1))
    conc = od @ hed_from_rgb.astype(np.float32)
    vectors = np.stack([nucleus, counterstain, rgb_from_hed[2]]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.round(np.clip(np.exp(-(conc @ vectors)), 0, 1) * 255).astype(np.uint8)


def stain_fluorescence(image: np.ndarray, nucleus: tuple = NOVEL_STAIN[0],
                       counterstain: tuple = NOVEL_STAIN[1], seed: int = 0) -> np.ndarray:
    """Draw a fluorescence image (bright nuclei on black) as a bright-field stain would.

    The second new-stain proxy of the fine-tuning benchmark, beside :func:`restain`: the
    nuclear signal (scaled to its 99.8th percentile) becomes the amount of a ``nucleus`` dye,
    on an uneven film of ``counterstain`` (smoothed noise, fixed by ``seed``). Nothing like
    it is in the training set (whose stained images are H&E tissue).

    Parameters
    ----------
    image : ndarray
        (Y, X) or (Y, X, C) fluorescence image (the first channel is used).
    nucleus, counterstain : tuple of 3 floats
        Optical density per unit of dye in R, G, B (normalized here).
    seed : int

    Returns
    -------
    ndarray
        (Y, X, 3) uint8.
    """
    from scipy import ndimage as ndi

    gray = np.asarray(image, np.float32)
    if gray.ndim == 3:
        gray = gray[..., 0]
    top = float(np.percentile(gray, 99.8)) or 1.0
    signal = np.clip(gray / top, 0, 1)
    rng = np.random.default_rng(seed)
    film = ndi.gaussian_filter(rng.normal(0, 1, gray.shape).astype(np.float32), 12)
    film = 0.25 + 0.1 * film / (np.abs(film).max() or 1.0)
    n = np.asarray(nucleus, np.float32) / np.linalg.norm(nucleus)
    c = np.asarray(counterstain, np.float32) / np.linalg.norm(counterstain)
    od = 1.4 * signal[..., None] * n + film[..., None] * c
    return np.round(np.clip(np.exp(-od), 0, 1) * 255).astype(np.uint8)


def degrade_normalized(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random contrast, brightness, gamma, blur, noise and JPEG artifacts.

    Parameters
    ----------
    x : ndarray
        Normalized network input (C, Y, X) float32, mostly in [0, 1].
    rng : numpy Generator

    Returns
    -------
    ndarray
        float32, same shape.
    """
    import cv2

    c = x.shape[0]
    if rng.random() < 0.5:
        gamma = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
        x = np.clip(x, 0, None) ** gamma
    gain = rng.uniform(0.7, 1.3) * rng.uniform(0.92, 1.08, size=(c, 1, 1))
    x = x * gain.astype(np.float32) + np.float32(rng.uniform(-0.1, 0.1))
    if rng.random() < 0.2:
        sigma = rng.uniform(0.4, 1.5)
        x = np.stack([cv2.GaussianBlur(ch, (0, 0), sigma) for ch in x])
    if rng.random() < 0.3:
        x = x + rng.normal(0, rng.uniform(0.005, 0.04), x.shape).astype(np.float32)
    if rng.random() < 0.2:
        # Compression at the crop's scale: block artifacts of 8 px, as a camera would make.
        lo, hi = float(x.min()), float(x.max())
        if hi > lo:
            u8 = np.round((np.moveaxis(x, 0, -1) - lo) / (hi - lo) * 255).astype(np.uint8)
            quality = int(rng.integers(25, 90))
            ok, buf = cv2.imencode(".jpg", u8 if c != 1 else u8[..., 0],
                                   [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok:
                dec = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).astype(np.float32)
                dec = dec.reshape(*x.shape[1:], c) if dec.ndim == 2 else dec
                x = np.moveaxis(dec, -1, 0) / 255.0 * (hi - lo) + lo
    return np.ascontiguousarray(x, np.float32)


__all__ = [
    "degrade_normalized",
    "hed_jitter",
    "hue_saturation",
    "random_colour_transform",
    "stain_shift",
]
