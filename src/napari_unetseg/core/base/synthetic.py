"""Z-stacks of nuclei with exact 3D ground truth, made from real 2D label images.

No public 3D nuclei data can be downloaded where this project is built and tested, so the
3D modes are measured on volumes grown from DSB2018's hand-drawn nuclei: their shapes,
sizes, crowding and intensities are real; their extent in Z, the optics and the noise are
modelled.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def synthetic_volume(
    labels: np.ndarray,
    image: np.ndarray | None = None,
    *,
    depth: int | None = None,
    anisotropy: float = 2.0,
    flatness: tuple[float, float] = (0.7, 1.0),
    blur: float = 1.0,
    noise: float = 0.03,
    attenuation: float = 0.4,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A (Z, Y, X) uint16 stack and its (Z, Y, X) labels from a 2D label image.

    Each nucleus becomes an ellipsoid-like body centred at a random height: its section at
    height ``dz`` from the centre is the 2D nucleus shrunk by ``sqrt(1 - (dz / rz)^2)``
    (through its distance to the edge, so irregular outlines stay irregular). ``rz`` is the
    nucleus's equivalent radius times a random flatness, divided by ``anisotropy`` (the Z
    step in XY pixels). Nuclei that touch in 2D touch in 3D where their heights overlap.
    Intensity is the 2D image's (its texture), dimmer away from each centre and with depth
    in the stack, blurred by a point spread function longer in Z, plus Gaussian noise.

    Parameters
    ----------
    labels : ndarray
        (Y, X) instance labels.
    image : ndarray, optional
        (Y, X) or (Y, X, C) image of those labels (gray is taken); flat nuclei without it.
    depth : int, optional
        Number of planes; by default enough for the largest nucleus (at least 8).
    anisotropy : float
        Z step / XY pixel size.
    flatness : (float, float)
        Range of the Z radius relative to the XY radius (nuclei are often flattened).
    blur : float
        XY sigma of the point spread function in pixels (Z: 2.5 times longer, physically).
    noise : float
        Standard deviation of the noise, relative to the brightest nucleus.
    attenuation : float
        Fraction of the signal lost from the first plane to the last.
    seed : int

    Returns
    -------
    volume : ndarray of uint16, labels : ndarray
        Labels keep the 2D ids (a nucleus has one id through Z).
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2D (Y, X), got shape {labels.shape}")
    if anisotropy <= 0:
        raise ValueError(f"anisotropy must be positive, got {anisotropy}")
    rng = np.random.default_rng(seed)
    ids = np.unique(labels)
    ids = ids[ids > 0]
    areas = ndi.sum_labels(np.ones_like(labels), labels, ids) if ids.size else np.array([])
    rz = np.sqrt(np.asarray(areas, float) / np.pi) * rng.uniform(*flatness, ids.size)
    rz = np.maximum(rz / anisotropy, 0.75)
    if depth is None:
        depth = max(8, int(np.ceil(2.5 * rz.max())) if ids.size else 8)
    # Centres keep at least half of each body inside the stack.
    lo, hi = np.minimum(rz / 2, depth / 2), np.maximum(depth - 1 - rz / 2, depth / 2)
    zc = rng.uniform(lo, hi)
    tex = _texture(image, labels)

    out_labels, signal = _bodies(labels, ids, rz, zc, tex, depth)
    z = np.arange(depth, dtype=np.float32)
    signal *= (1 - attenuation * z / max(depth - 1, 1))[:, None, None]
    signal = ndi.gaussian_filter(signal, (2.5 * blur / anisotropy, blur, blur))
    signal += 0.05 + rng.normal(0, noise, signal.shape).astype(np.float32)
    volume = np.clip(signal * 20000, 0, 65535).astype(np.uint16)
    return volume, out_labels


def _bodies(labels, ids, rz, zc, tex, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Each nucleus's sections through Z (labels) and its brightness (signal)."""
    out_labels = np.zeros((depth, *labels.shape), labels.dtype)
    signal = np.zeros((depth, *labels.shape), np.float32)
    boxes = ndi.find_objects(labels)
    z = np.arange(depth, dtype=np.float32)
    for k, i in enumerate(ids.tolist()):
        sl = boxes[i - 1]
        if sl is None:
            continue
        sl = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in sl)
        mask = labels[sl] == i
        edt = ndi.distance_transform_edt(mask)
        rel = edt / max(edt.max(), 1e-6)  # 1 at the nucleus's core, ~0 at its edge
        u = np.abs(z - zc[k]) / rz[k]
        for zi in np.flatnonzero(u < 1):
            section = mask & (rel >= 1 - np.sqrt(1 - u[zi] ** 2))
            if not section.any():
                continue
            out_labels[zi][sl][section] = i
            signal[zi][sl][section] = tex[sl][section] * (1 - 0.5 * u[zi] ** 2)
    return out_labels, signal


def _texture(image: np.ndarray | None, labels: np.ndarray) -> np.ndarray:
    """Nucleus brightness 0.3-1 from the image's gray values (its texture), 0.8 without."""
    if image is None:
        return np.full(labels.shape, 0.8, np.float32)
    gray = np.asarray(image, np.float32)
    if gray.ndim == 3:
        gray = gray[..., :3].mean(-1)
    inside = gray[labels > 0]
    if inside.size == 0:
        return np.full(labels.shape, 0.8, np.float32)
    lo, hi = np.percentile(inside, [1, 99])
    return (0.3 + 0.7 * np.clip((gray - lo) / max(hi - lo, 1e-6), 0, 1)).astype(np.float32)
