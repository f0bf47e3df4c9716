"""Image/label pairs for training and evaluation, and the augmenting crop sampler."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .io import ImageReadError, list_images, read_image, read_labels
from .normalize import normalize_plane, plane_scaling
from .targets import make_targets, unet_weight_map


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
    """One training image: normalized (C, Y, X) float16 and its labels."""

    name: str
    image: np.ndarray
    labels: np.ndarray
    style: str = "gray"


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
    return image, labels


def load_samples(pairs: list[tuple[Path, Path]], normalization: dict) -> list[Sample]:
    """Read and normalize training pairs (kept in memory as float16)."""
    out = []
    for ip, lp in pairs:
        image, labels = load_pair(ip, lp)
        x = normalize_plane(image, normalization).astype(np.float16)
        out.append(Sample(ip.stem, x, labels.astype(np.int32), image_style(image, normalization)))
    return out


class CropSampler:
    """Random augmented crops with their targets.

    Augmentation: random scale (log-uniform), random crop, flips, 90 degree rotations,
    contrast/brightness jitter and a little noise. Targets are computed after scaling, so
    the border keeps its width in pixels at every scale.
    """

    def __init__(
        self,
        samples: list[Sample],
        crop: int,
        targets: str,
        border_width: int,
        weighted: bool,
        scale_range: tuple[float, float] = (0.6, 1.7),
        seed: int = 0,
    ):
        if not samples:
            raise DatasetError("no training images")
        self.samples = samples
        self.crop = crop
        self.targets = targets
        self.border_width = border_width
        self.weighted = weighted
        self.log_scale = np.log(scale_range)
        self.rng = np.random.default_rng(seed)

    def sample(self, index: int):
        import torch
        import torch.nn.functional as F

        s = self.samples[index]
        rng = self.rng
        scale = float(np.exp(rng.uniform(*self.log_scale)))
        region = max(8, int(round(self.crop / scale)))
        c, h, w = s.image.shape
        y0 = int(rng.integers(0, max(h - region, 0) + 1))
        x0 = int(rng.integers(0, max(w - region, 0) + 1))
        img = s.image[:, y0 : y0 + region, x0 : x0 + region].astype(np.float32)
        lab = s.labels[y0 : y0 + region, x0 : x0 + region]
        ph, pw = region - img.shape[1], region - img.shape[2]
        if ph or pw:
            mode = "reflect" if ph < img.shape[1] and pw < img.shape[2] else "symmetric"
            img = np.pad(img, ((0, 0), (0, ph), (0, pw)), mode=mode)
            lab = np.pad(lab, ((0, ph), (0, pw)), mode=mode)
        if region != self.crop:
            t = torch.from_numpy(img)[None]
            img = F.interpolate(
                t, size=(self.crop, self.crop), mode="bilinear", align_corners=False,
                antialias=region > self.crop,
            )[0].numpy()
            idx = np.minimum(
                ((np.arange(self.crop) + 0.5) * region / self.crop).astype(int), region - 1
            )
            lab = lab[np.ix_(idx, idx)]
        k = int(rng.integers(4))
        img, lab = np.rot90(img, k, axes=(1, 2)), np.rot90(lab, k)
        if rng.random() < 0.5:
            img, lab = img[:, :, ::-1], lab[:, ::-1]
        img = np.ascontiguousarray(img)
        lab = np.ascontiguousarray(lab)
        gain = rng.uniform(0.7, 1.3) * rng.uniform(0.92, 1.08, size=(c, 1, 1))
        img = img * gain.astype(np.float32) + np.float32(rng.uniform(-0.1, 0.1))
        if rng.random() < 0.3:
            img = img + rng.normal(0, rng.uniform(0.005, 0.03), img.shape).astype(np.float32)
        tgt = make_targets(lab, self.targets, self.border_width)
        # The loss's Dice term balances the classes: only the gap term (which is what
        # separates touching nuclei) is added.
        wmap = unet_weight_map(lab, balance=False) if self.weighted else None
        return img.astype(np.float32), tgt, wmap

    def batch(self, indices):
        import torch

        items = [self.sample(i) for i in indices]
        x = torch.from_numpy(np.stack([it[0] for it in items]))
        y = torch.from_numpy(np.stack([it[1] for it in items]))
        w = torch.from_numpy(np.stack([it[2] for it in items])) if self.weighted else None
        return x, y, w
