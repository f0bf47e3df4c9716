"""The Dynamic U-Net: a decoder built automatically from an encoder's feature maps."""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..base.modes import TARGET_MODES, target_mode
from ..base.normalize import DEFAULT_NORMALIZATION
from ..base.thresholds import DEFAULT_THRESHOLDS
from .encoders import (
    FeatureEncoder,
    ProbedEncoder,
    TimmEncoder,
    UNetEncoder,
    conv_block,
    import_builder,
    load_encoder_weights,
)

#: Output channels per target mode; see :mod:`napari_unetseg.core.training.targets`.
TARGET_CHANNELS = {name: mode.channels for name, mode in TARGET_MODES.items()}
UPSAMPLE_MODES = ("nearest", "bilinear", "transposed")


class UpStage(nn.Module):
    """Upsample by ``scale``, concatenate the skip connection (if any), two convolutions."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, scale: int, mode: str):
        super().__init__()
        if mode == "transposed":
            self.up = nn.ConvTranspose2d(in_ch, out_ch, kernel_size=scale, stride=scale)
            up_ch = out_ch
        else:
            align = False if mode == "bilinear" else None
            self.up = nn.Upsample(scale_factor=scale, mode=mode, align_corners=align)
            up_ch = in_ch
        self.conv = conv_block(up_ch + skip_ch, out_ch)
        self.conv_skip_channels = skip_ch

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = self.up(x)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv(x)


class DynamicUNet(nn.Module):
    """U-Net whose decoder mirrors whatever strides the encoder produces.

    Every power-of-two stride between the deepest feature map and full resolution gets a
    decoder stage; a stage concatenates the encoder feature at its stride when there is one,
    and the full-resolution stage concatenates the input image when the encoder has no
    stride-1 feature (stems with stride 2 or 4 are restored this way). Inputs of any size are
    padded to a multiple of the deepest stride and the output is cropped back.
    """

    def __init__(
        self,
        encoder: FeatureEncoder,
        in_channels: int,
        targets: str,
        upsample: str,
        decoder_channels: list[int] | None,
        config: dict[str, Any],
    ):
        super().__init__()
        self.encoder = encoder
        self.targets = targets
        strides, chans = list(encoder.strides), list(encoder.channels)
        self.total_stride = strides[-1]
        skip_ch = dict(zip(strides, chans))
        if 1 not in skip_ch:
            skip_ch[1] = in_channels
            self._input_skip = True
        else:
            self._input_skip = False
        # Decoder strides: all powers of two from deepest/2 down to 1.
        stage_strides = []
        s = self.total_stride // 2
        while s >= 1:
            stage_strides.append(s)
            s //= 2
        if decoder_channels is None:
            decoder_channels, prev = [], chans[-1]
            for s in stage_strides:
                # The input image is not a feature: it must not set the width.
                skip_width = 0 if (s == 1 and self._input_skip) else skip_ch.get(s, 0)
                width = max(skip_width, prev // 2, 16)
                decoder_channels.append(width)
                prev = width
        if len(decoder_channels) != len(stage_strides):
            raise ValueError(
                f"decoder_channels needs {len(stage_strides)} entries (one per stride "
                f"{stage_strides}), got {len(decoder_channels)}"
            )
        self.stage_strides = stage_strides
        stages, prev = [], chans[-1]
        for s, width in zip(stage_strides, decoder_channels):
            stages.append(UpStage(prev, skip_ch.get(s, 0), width, 2, upsample))
            prev = width
        self.stages = nn.ModuleList(stages)
        self.head = nn.Conv2d(prev, TARGET_CHANNELS[targets], 1)
        self._skip_index = {s: i for i, s in enumerate(strides)}
        self.config = dict(config, decoder_channels=list(decoder_channels))
        # Part of the model: the same input scaling in training and inference; checkpoints
        # store both and load_checkpoint restores them.
        self.normalization = dict(DEFAULT_NORMALIZATION, channels=in_channels)
        self.thresholds = dict(DEFAULT_THRESHOLDS)
        #: Canonical nucleus diameter in pixels (size-normalized models), else None.
        self.diameter: float | None = None

    @property
    def in_channels(self) -> int:
        return int(self.config["in_channels"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = self.total_stride
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            # Reflection keeps image statistics at the border; tiny inputs cannot reflect.
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        feats = self.encoder(x)
        y = feats[-1]
        for s, stage in zip(self.stage_strides, self.stages):
            if s == 1 and self._input_skip:
                skip = x
            else:
                i = self._skip_index.get(s)
                skip = feats[i] if i is not None else None
            y = stage(y, skip)
        y = self.head(y)
        return y[..., :h, :w]

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Map logits to probability maps: softmax for ``three_class``, sigmoid otherwise."""
        if target_mode(self.targets).activation == "softmax":
            return torch.softmax(logits, dim=1)
        return torch.sigmoid(logits)


def build_model(
    encoder: str | nn.Module = "unet",
    in_channels: int = 1,
    targets: str = "mask_border",
    upsample: str = "transposed",
    *,
    encoder_kwargs: dict[str, Any] | None = None,
    decoder_channels: list[int] | None = None,
    pretrained: bool = False,
    encoder_weights: str | None = None,
) -> DynamicUNet:
    """Build a U-Net with a decoder derived from the encoder.

    Parameters
    ----------
    encoder : str or torch.nn.Module
        ``"unet"`` (the paper's encoder; ``encoder_kwargs`` may set ``depth`` and
        ``base_width``), ``"timm:<name>"`` (any timm model supporting ``features_only``),
        ``"module:package.module:function"`` (a function returning an ``nn.Module``, called
        with ``encoder_kwargs``; rebuildable from a checkpoint), or an ``nn.Module`` instance
        (its feature maps are found by probing; such a model cannot be saved as a
        checkpoint because it cannot be rebuilt).
    in_channels : int
        Image channels; pretrained first convolutions are adapted to it.
    targets : {"mask_border", "three_class", "mask_border_distance", "binary"}
        What the network predicts (2 sigmoid, 3 softmax, 3 sigmoid or 1 sigmoid
        channels).
    upsample : {"nearest", "bilinear", "transposed"}
        Decoder upsampling.
    encoder_kwargs : dict, optional
        Extra arguments for the encoder.
    decoder_channels : list of int, optional
        Width of each decoder stage, deepest first; derived from the encoder when omitted.
    pretrained : bool
        Download ImageNet weights through timm (``timm:`` encoders only; needs network).
    encoder_weights : str, optional
        Local file with encoder weights, loaded after building.

    Returns
    -------
    DynamicUNet
        With ``.targets`` and ``.config`` (enough to rebuild it with ``build_model(**config)``).
    """
    if targets not in TARGET_CHANNELS:
        raise ValueError(f"targets must be one of {sorted(TARGET_CHANNELS)}, got {targets!r}")
    if upsample not in UPSAMPLE_MODES:
        raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
    kwargs = dict(encoder_kwargs or {})
    if pretrained and not (isinstance(encoder, str) and encoder.startswith("timm:")):
        raise ValueError("pretrained=True needs a 'timm:<name>' encoder")
    enc, spec = _make_encoder(encoder, in_channels, pretrained, kwargs)
    if encoder_weights:
        body = enc.body if hasattr(enc, "body") else enc
        load_encoder_weights(body, encoder_weights)
    config = {
        "encoder": spec,
        "encoder_kwargs": copy.deepcopy(kwargs),
        "in_channels": in_channels,
        "targets": targets,
        "upsample": upsample,
    }
    return DynamicUNet(enc, in_channels, targets, upsample, decoder_channels, config)


def _make_encoder(encoder, in_channels: int, pretrained: bool, kwargs: dict):
    """The encoder a :func:`build_model` spec names, and the spec to record."""
    if isinstance(encoder, nn.Module):
        return ProbedEncoder(encoder, in_channels), f"custom:{type(encoder).__qualname__}"
    if encoder == "unet":
        return UNetEncoder(in_channels, **kwargs), "unet"
    if isinstance(encoder, str) and encoder.startswith("timm:"):
        return TimmEncoder(encoder[5:], in_channels, pretrained=pretrained, **kwargs), encoder
    if isinstance(encoder, str) and encoder.startswith("module:"):
        module = import_builder(encoder[7:])(**kwargs)
        if not isinstance(module, nn.Module):
            raise ValueError(f"{encoder[7:]} returned {type(module).__name__}, not an nn.Module")
        return ProbedEncoder(module, in_channels), encoder
    raise ValueError(f"unknown encoder {encoder!r}: use 'unet', 'timm:<name>', "
                     "'module:package.module:function' or an nn.Module")
