"""Image/label pairs for training and evaluation, and the augmenting crop sampler."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..base.normalize import PlaneScaling, apply_scaling, as_plane, plane_scaling
from ..base.resample import resize_labels, resize_plane
from ..base.styles import image_style
from ..inference.diameter import median_diameter, scale_for
from ..io.images import ImageReadError, list_images, read_image, read_labels
from .augment import degrade_normalized, random_colour_transform
from .targets import make_targets, unet_weight_map

# Pixels of the strided subsample that stands for the whole image when an augmented
# image's percentiles are computed (plane_scaling samples pixels with a stride too).
_THUMB_PIXELS = 1 << 16


class DatasetError(ValueError):
    """Training data is missing or inconsistent; the message names the files."""


def find_pairs(
    images_dir: str | Path, labels_dir: str | Path, ids: list[str] | None = None
) -> list[tuple[Path, Path]]:
    """Match images and label files by file stem.

    Parameters
    ----------
    images_dir, labels_dir : str or Path
    ids : list of str, optional
        Only these stems (e.g. from a validation list); each must exist.
    """
    try:
        images = {p.stem: p for p in list_images(images_dir)}
        labels = {p.stem: p for p in list_images(labels_dir)}
    except ImageReadError as exc:
        raise DatasetError(str(exc)) from None
    if not images:
        raise DatasetError(f"no images (PNG/TIFF/JPEG) in {images_dir}")
    wanted = sorted(images) if ids is None else list(ids)
    missing_img = [i for i in wanted if i not in images]
    if missing_img:
        raise DatasetError(
            f"{len(missing_img)} listed image(s) not found in {images_dir}, e.g. {missing_img[0]}"
        )
    missing = [i for i in wanted if i not in labels]
    if missing:
        names = ", ".join(images[i].name for i in missing[:3])
        raise DatasetError(
            f"{len(missing)} image(s) have no label file in {labels_dir} (same stem): {names}"
            + (" ..." if len(missing) > 3 else "")
        )
    return [(images[i], labels[i]) for i in wanted]


def read_id_list(path: str | Path) -> list[str]:
    """Stems listed one per line (blank lines and ``#`` comments ignored)."""
    lines = Path(path).read_text().splitlines()
    return [s.strip() for s in lines if s.strip() and not s.startswith("#")]


@dataclass
class Sample:
    """One training image: raw (Y, X, C) pixels as read, and its labels.

    ``scaling`` is the whole image's intensity scaling, ``diameter`` its median nucleus
    diameter in pixels (from the labels, or as given), ``thumb`` a strided subsample of the
    raw image from which an augmented image's percentiles are computed.
    """

    name: str
    image: np.ndarray
    labels: np.ndarray
    style: str = "gray"
    diameter: float | None = None
    scaling: PlaneScaling | None = None
    thumb: np.ndarray | None = None


def make_sample(name: str, image: np.ndarray, labels: np.ndarray, normalization: dict,
                diameter: float | None = None) -> Sample:
    """A :class:`Sample` from raw pixels and labels (``diameter`` measured when not given)."""
    raw = as_plane(image)
    step = max(1, int(np.ceil(np.sqrt(raw.shape[0] * raw.shape[1] / _THUMB_PIXELS))))
    return Sample(
        name, raw, np.asarray(labels, np.int32), image_style(image, normalization),
        diameter if diameter else median_diameter(labels),
        plane_scaling(raw, normalization), np.ascontiguousarray(raw[::step, ::step]),
    )


def load_pair(image_path: Path, label_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one pair and check that the shapes match."""
    image = read_image(image_path)
    labels = read_labels(label_path)
    if labels.ndim != 2:
        raise DatasetError(f"{label_path}: training labels must be 2D, got shape {labels.shape}")
    if image.shape[:2] != labels.shape:
        raise DatasetError(
            f"shape mismatch: {image_path.name} is {image.shape[:2]} but "
            f"{label_path.name} is {labels.shape}"
        )
    if labels.dtype.kind == "i" and labels.size and labels.min() < 0:
        raise DatasetError(f"{label_path}: labels have negative ids; ids are 0 (background) "
                           "and positive whole numbers")
    if labels.dtype.kind == "u" and labels.size and labels.max() > np.iinfo(np.int32).max:
        from skimage.segmentation import relabel_sequential

        labels = relabel_sequential(labels)[0]  # ids beyond int32 stay distinct
    return image, labels


def load_samples(pairs: list[tuple[Path, Path]], normalization: dict,
                 diameter: float | None = None) -> list[Sample]:
    """Read training pairs; ``diameter`` (px) overrides the sizes measured from the labels."""
    out = []
    for ip, lp in pairs:
        image, labels = load_pair(ip, lp)
        out.append(make_sample(ip.stem, image, labels, normalization, diameter))
    if out and not any(s.labels.any() for s in out):
        raise DatasetError(f"none of the {len(out)} label files has an object (all are "
                           "empty): nothing to learn from")
    return out


class CropSampler:
    """Random augmented crops with their targets.

    Geometry: with a ``canonical_diameter``, each image is rescaled so that its median
    nucleus has that diameter, times a log-uniform ``scale_jitter``; without one, by a
    log-uniform factor in ``scale_jitter`` alone. Then a random crop, flips and 90 degree
    rotations. Photometry (``colour_augment``): stain, hue and grayscale changes of colour
    images on their raw colours, then contrast, gamma, blur, noise and JPEG artifacts
    (:mod:`.augment`). Targets are computed after scaling, so the border keeps its width in
    pixels at every scale.
    """

    def __init__(
        self,
        samples: list[Sample],
        crop: int,
        targets: str,
        border_width: int,
        weighted: bool,
        normalization: dict | None = None,
        *,
        canonical_diameter: float | None = None,
        scale_jitter: tuple[float, float] = (0.6, 1.7),
        colour_augment: bool = True,
        seed: int = 0,
    ):
        if not samples:
            raise DatasetError("no training images")
        from ..base.normalize import DEFAULT_NORMALIZATION

        self.samples = samples
        self.crop = crop
        self.targets = targets
        self.border_width = border_width
        self.weighted = weighted
        self.normalization = normalization or DEFAULT_NORMALIZATION
        self.canonical_diameter = canonical_diameter
        self.log_jitter = np.log(scale_jitter)
        self.colour_augment = colour_augment
        self.rng = np.random.default_rng(seed)

    def _scale(self, s: Sample, rng: np.random.Generator) -> float:
        base = scale_for(s.diameter, self.canonical_diameter)
        return base * float(np.exp(rng.uniform(*self.log_jitter)))

    def _normalized(self, s: Sample, raw: np.ndarray, rng) -> np.ndarray:
        """Network input (C, Y, X) of a raw crop, colours augmented for colour images."""
        if not (self.colour_augment and s.style == "color" and raw.shape[-1] == 3):
            return apply_scaling(raw, s.scaling, self.normalization)
        ref = float(np.iinfo(raw.dtype).max) if raw.dtype.kind in "ui" else max(
            float(np.nanmax(s.thumb)), 1e-6)
        transform = random_colour_transform(rng, True)
        thumb = transform(s.thumb.astype(np.float32) / ref)
        scaling = plane_scaling(thumb, self.normalization)
        return apply_scaling(transform(raw.astype(np.float32) / ref), scaling,
                             self.normalization)

    def sample(self, index: int, rng: np.random.Generator | None = None):
        """One (input, targets, weights) triple from image ``index``."""
        s = self.samples[index]
        rng = self.rng if rng is None else rng
        scale = self._scale(s, rng)
        region = max(8, int(round(self.crop / scale)))
        h, w = s.image.shape[:2]
        y0 = int(rng.integers(0, max(h - region, 0) + 1))
        x0 = int(rng.integers(0, max(w - region, 0) + 1))
        raw = s.image[y0 : y0 + region, x0 : x0 + region]
        lab = s.labels[y0 : y0 + region, x0 : x0 + region]
        ph, pw = region - raw.shape[0], region - raw.shape[1]
        if ph or pw:
            mode = "reflect" if ph < raw.shape[0] and pw < raw.shape[1] else "symmetric"
            raw = np.pad(raw, ((0, ph), (0, pw), (0, 0)), mode=mode)
            lab = np.pad(lab, ((0, ph), (0, pw)), mode=mode)
        if region != self.crop:
            # Resize the raw pixels first: the colour work then costs the same at any scale.
            raw = resize_plane(raw.astype(np.float32), (self.crop, self.crop))
            lab = resize_labels(lab, (self.crop, self.crop))
        img = self._normalized(s, raw, rng)
        k = int(rng.integers(4))
        img, lab = np.rot90(img, k, axes=(1, 2)), np.rot90(lab, k)
        if rng.random() < 0.5:
            img, lab = img[:, :, ::-1], lab[:, ::-1]
        img = np.ascontiguousarray(img)
        lab = np.ascontiguousarray(lab)
        if self.colour_augment:
            img = degrade_normalized(img, rng)
        else:
            gain = rng.uniform(0.7, 1.3) * rng.uniform(0.92, 1.08, size=(img.shape[0], 1, 1))
            img = img * gain.astype(np.float32) + np.float32(rng.uniform(-0.1, 0.1))
            if rng.random() < 0.3:
                img = img + rng.normal(0, rng.uniform(0.005, 0.03), img.shape).astype(np.float32)
        tgt = make_targets(lab, self.targets, self.border_width)
        # The loss's Dice term balances the classes: only the gap term (which is what
        # separates touching nuclei) is added.
        wmap = unet_weight_map(lab, balance=False) if self.weighted else None
        return img.astype(np.float32), tgt, wmap

    def batch(self, indices, rng: np.random.Generator | None = None):
        """Stacked torch tensors (x, y, w) of crops from the images ``indices``."""
        import torch

        items = [self.sample(i, rng) for i in indices]
        x = torch.from_numpy(np.stack([it[0] for it in items]))
        y = torch.from_numpy(np.stack([it[1] for it in items]))
        w = torch.from_numpy(np.stack([it[2] for it in items])) if self.weighted else None
        return x, y, w

    def batches(self, order: np.ndarray, batch_size: int, seed: int, workers: int = 0):
        """The batches of one epoch, made by ``workers`` processes (0: this one).

        Batch ``k`` uses a generator seeded by ``(seed, k)``, so the crops do not depend on
        which process makes them.
        """
        n = len(order) // batch_size

        def make(k):
            rng = np.random.default_rng((seed, k))
            return self.batch(order[k * batch_size : (k + 1) * batch_size], rng)

        if workers <= 0:
            return (make(k) for k in range(n))
        import torch

        class _Batches(torch.utils.data.Dataset):
            def __len__(self):
                return n

            def __getitem__(self, k):
                return make(k)

        return iter(torch.utils.data.DataLoader(
            _Batches(), batch_size=None, shuffle=False, num_workers=workers,
            pin_memory=False, prefetch_factor=4,
        ))
