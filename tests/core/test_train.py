import pytest

from napari_unetseg.core.data import CropSampler, make_sample
from napari_unetseg.core.io import read_image, read_labels
from napari_unetseg.core.normalize import DEFAULT_NORMALIZATION
from napari_unetseg.core.train import loss_fn, predict_maps

from ..conftest import SAMPLES


@pytest.mark.parametrize("targets", ["three_class", "mask_border", "mask_border_distance"])
def test_weighted_training_finds_the_nuclei_without_painting_background(targets):
    # A few dozen steps of a small U-Net on crops of the fluorescence sample, gap weights on:
    # the predicted foreground must cover the nuclei and not spread into the background
    # (three_class's foreground once took in a band around every nucleus).
    import torch

    from napari_unetseg.core.model import build_model

    torch.manual_seed(0)
    image = read_image(SAMPLES / "fluorescence_nuclei.png")[:256, :256]
    labels = read_labels(SAMPLES / "labels" / "fluorescence_nuclei.tif")[:256, :256]
    sample = make_sample("f", image, labels, DEFAULT_NORMALIZATION)
    sampler = CropSampler([sample], 64, targets, 3, weighted=True, colour_augment=False, seed=0)
    model = build_model("unet", 3, targets, encoder_kwargs={"depth": 3, "base_width": 8})
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(60):
        x, y, w = sampler.batch([0] * 4)
        loss = loss_fn(model(x), y, w, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    maps = predict_maps(model, [image])[0][0]
    predicted = maps[2] < 0.5 if targets == "three_class" else maps[0] > 0.5
    truth = labels > 0
    iou = (predicted & truth).sum() / (predicted | truth).sum()
    assert iou > 0.6, iou
    assert predicted.sum() < 1.3 * truth.sum()
