import pytest
import torch
from torch import nn

from napari_unetseg.core import build_model

SIZES = [(257, 301), (64, 1000), (33, 17)]


@pytest.mark.parametrize("upsample", ["nearest", "bilinear", "transposed"])
@pytest.mark.parametrize("targets,n_out", [("mask_border", 2), ("three_class", 3), ("binary", 1)])
def test_unet_output_matches_input_size(upsample, targets, n_out):
    model = build_model("unet", 1, targets, upsample,
                        encoder_kwargs={"depth": 3, "base_width": 4}).eval()
    with torch.no_grad():
        for h, w in SIZES:
            assert model(torch.randn(1, 1, h, w)).shape == (1, n_out, h, w)
    assert model.targets == targets
    assert model.config["upsample"] == upsample


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_lite0", "convnext_atto",
                                  "mobilenetv3_small_050", "regnetx_002"])
@pytest.mark.parametrize("in_channels", [1, 2, 3, 4])
def test_timm_encoders_any_channels_any_size(name, in_channels):
    model = build_model(f"timm:{name}", in_channels, "mask_border", "bilinear").eval()
    # Strides and channels are read from timm's feature info.
    assert model.encoder.strides == sorted(model.encoder.strides)
    with torch.no_grad():
        for h, w in SIZES[:2]:
            assert model(torch.randn(1, in_channels, h, w)).shape == (1, 2, h, w)


def test_plain_sequential_encoder_is_probed():
    seq = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )
    model = build_model(seq, in_channels=1).eval()
    assert model.encoder.strides == [1, 2, 4]
    assert model.encoder.channels == [8, 16, 32]
    with torch.no_grad():
        assert model(torch.randn(2, 1, 99, 77)).shape == (2, 2, 99, 77)


class Stride4Stem(nn.Module):
    """First feature map already at stride 4 (conv-bn-relu-pool in one block)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 7, 2, 3), nn.BatchNorm2d(16), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        self.stage2 = nn.Sequential(nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU())
        self.stage3 = nn.Sequential(nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU())
        self.head = nn.Linear(64, 5)

    def forward(self, x):
        x = self.stage3(self.stage2(self.stem(x)))
        return self.head(x.mean((2, 3)))


def test_encoder_starting_at_stride_4_is_restored_to_full_resolution():
    model = build_model(Stride4Stem(), in_channels=1).eval()
    assert model.encoder.strides[0] >= 2
    assert 4 in model.encoder.strides and 16 in model.encoder.strides
    # Stages without an encoder skip are inserted down to stride 1.
    assert model.stage_strides[-2:] == [2, 1]
    with torch.no_grad():
        assert model(torch.randn(1, 1, 130, 70)).shape == (1, 2, 130, 70)


def test_torchvision_resnet_is_probed_and_its_head_skipped():
    tv = pytest.importorskip("torchvision")
    model = build_model(tv.models.resnet18(), in_channels=2, targets="binary")
    assert model.encoder.strides == [2, 4, 8, 16, 32]
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 2, 65, 90)).shape == (1, 1, 65, 90)


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="targets"):
        build_model("unet", 1, "whatever")
    with pytest.raises(ValueError, match="upsample"):
        build_model("unet", 1, upsample="cubic")
    with pytest.raises(ValueError, match="unknown timm model"):
        build_model("timm:not_a_model")
    with pytest.raises(ValueError, match="unknown encoder"):
        build_model("vgg")
