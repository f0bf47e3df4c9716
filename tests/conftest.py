"""Shared fixtures: real sample images and a small checkpoint saved to disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_data"
SHARED = ROOT.parent / "shared" / "data" / "dsb2018_stage1_train"


@pytest.fixture(scope="session")
def fluo():
    """The fluorescence sample (gray, 520x696) and its ground truth."""
    from napari_unetseg.core.io.images import read_image, read_labels

    return (read_image(SAMPLES / "fluorescence_nuclei.png"),
            read_labels(SAMPLES / "labels" / "fluorescence_nuclei.tif"))


@pytest.fixture(scope="session")
def tissue():
    """The stained tissue sample (RGB, 256x320) and its ground truth."""
    from napari_unetseg.core.io.images import read_image, read_labels

    return (read_image(SAMPLES / "tissue_stained.png"),
            read_labels(SAMPLES / "labels" / "tissue_stained.tif"))


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """A small randomly initialised model saved as a checkpoint (fast to run)."""
    import torch

    from napari_unetseg.core import build_model, save_checkpoint

    torch.manual_seed(0)
    model = build_model("unet", 3, encoder_kwargs={"depth": 3, "base_width": 8})
    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    save_checkpoint(model, path, provenance={"note": "random weights, for tests"})
    return path


def two_touching_discs(shape=(64, 96), r=14):
    """Labels with two discs that touch along a vertical line (ids 1 and 2)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    cy, c1, c2 = shape[0] // 2, shape[1] // 2 - r, shape[1] // 2 + r
    d1 = (yy - cy) ** 2 + (xx - c1) ** 2 <= r * r
    d2 = (yy - cy) ** 2 + (xx - c2) ** 2 <= r * r
    labels = np.zeros(shape, np.uint16)
    labels[d1] = 1
    labels[d2 & ~d1] = 2
    return labels
