import pytest

from napari_unetseg.core.base.normalize import DEFAULT_NORMALIZATION
from napari_unetseg.core.io.images import read_image, read_labels
from napari_unetseg.core.training.data import CropSampler, make_sample
from napari_unetseg.core.training.loss import segmentation_loss
from napari_unetseg.core.training.validation import predict_maps

from ..conftest import SAMPLES


@pytest.mark.parametrize("targets", ["three_class", "mask_border", "mask_border_distance"])
def test_weighted_training_finds_the_nuclei_without_painting_background(targets):
    # A few dozen steps of a small U-Net on crops of the fluorescence sample, gap weights on:
    # the predicted foreground must cover the nuclei and not spread into the background
    # (three_class's foreground once took in a band around every nucleus).
    import torch

    from napari_unetseg.core.network.model import build_model

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
        loss = segmentation_loss(model(x), y, w, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    maps = predict_maps(model, [image])[0][0]
    predicted = maps[2] < 0.5 if targets == "three_class" else maps[0] > 0.5
    truth = labels > 0
    iou = (predicted & truth).sum() / (predicted | truth).sum()
    assert iou > 0.6, iou
    assert predicted.sum() < 1.3 * truth.sum()


def _pairs(tmp_path):
    """The three samples as training files, the fluorescence one held out."""
    import shutil

    for d in ("images", "labels"):
        (tmp_path / d).mkdir(exist_ok=True)
    pairs = []
    for n in ("tissue_stained", "brightfield_nuclei", "fluorescence_nuclei"):
        shutil.copy(SAMPLES / f"{n}.png", tmp_path / "images" / f"{n}.png")
        shutil.copy(SAMPLES / "labels" / f"{n}.tif", tmp_path / "labels" / f"{n}.tif")
        pairs.append((tmp_path / "images" / f"{n}.png", tmp_path / "labels" / f"{n}.tif"))
    return pairs[:2], pairs[2:]


def _tiny_config(**kw):
    from napari_unetseg.core.training.train import TrainConfig

    return TrainConfig(encoder="unet", encoder_kwargs={"depth": 3, "base_width": 8}, crop=64,
                       batch_size=4, epoch_images=8, canonical_diameter=24.0, **kw)


def test_resume_continues_the_run_where_it_stopped(tmp_path):
    from napari_unetseg.core.training.train import train

    tr, va = _pairs(tmp_path)
    first = train(_tiny_config(epochs=2), tr, va, tmp_path / "m.pt", show_progress=False)
    assert first["epochs"] == 2 and (tmp_path / "m.pt.resume.pt").exists()
    more = train(_tiny_config(epochs=4), tr, va, tmp_path / "m.pt", resume=tmp_path / "m.pt",
                 show_progress=False)
    # Epochs and steps go on from the saved state; the history keeps the first two epochs.
    assert more["epochs"] == 4 and more["steps"] == 4 * 2
    assert [h["epoch"] for h in more["history"]] == [1, 2, 3, 4]


def test_init_fine_tunes_with_the_checkpoints_architecture(tmp_path, tiny_model_path):
    from napari_unetseg.core.network.checkpoint import read_checkpoint_info
    from napari_unetseg.core.training.train import train

    tr, va = _pairs(tmp_path)
    config = _tiny_config(epochs=1, border_width=2)
    config.encoder_kwargs = {"depth": 4, "base_width": 16}  # ignored: the checkpoint's wins
    summary = train(config, tr, va, tmp_path / "ft.pt", init=tiny_model_path,
                    show_progress=False)
    info = read_checkpoint_info(tmp_path / "ft.pt")
    assert summary["epochs"] == 1
    assert info["config"]["encoder_kwargs"] == {"depth": 3, "base_width": 8}
    assert info["provenance"]["training"]["init"] == str(tiny_model_path.resolve())
    assert info["provenance"]["training"]["border_width"] == 2


def test_average_last_scores_the_mean_of_the_last_epochs(tmp_path):
    from napari_unetseg.core.training.train import train

    tr, va = _pairs(tmp_path)
    summary = train(_tiny_config(epochs=4, average_last=0.5), tr, va, tmp_path / "a.pt",
                    show_progress=False)
    assert summary["averaged"]["epochs"] == [2, 4]
    # The mean replaces the best epoch exactly when it scores higher.
    best_epoch = max(h["mAP_50_95"] for h in summary["history"])
    if summary["averaged"]["mAP_50_95"] > best_epoch:
        assert summary["best"]["epoch"] == "mean of epochs 2-4"
    else:
        assert summary["best"]["epoch"] in (1, 2, 3, 4)


def test_cancel_stops_and_keeps_a_checkpoint(tmp_path):
    from napari_unetseg.core.training.train import train

    tr, va = _pairs(tmp_path)
    steps = []
    summary = train(_tiny_config(epochs=50), tr, va, tmp_path / "c.pt", show_progress=False,
                    on_step=lambda d, t: steps.append(d), cancel=lambda: len(steps) >= 5)
    assert summary["interrupted"] and summary["epochs"] < 50
    assert (tmp_path / "c.pt").exists()
