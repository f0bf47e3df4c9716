"""Encoders that expose a list of feature maps with known channels and strides.

Three kinds feed the same decoder: the U-Net paper's encoder, any timm model built with
``features_only``, and any ``torch.nn.Module`` whose feature maps are found by probing it
with forward hooks.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn


class PretrainedWeightsError(RuntimeError):
    """Pretrained encoder weights could not be obtained or do not fit the encoder."""


def conv_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """Two padded 3x3 convolutions with batch norm and ReLU (the U-Net paper's unit)."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class FeatureEncoder(nn.Module):
    """Base class: ``forward`` returns feature maps ordered by increasing stride."""

    channels: list[int]
    strides: list[int]


class UNetEncoder(FeatureEncoder):
    """The contracting path of the U-Net paper with padded convolutions.

    Parameters
    ----------
    in_channels : int
        Number of image channels.
    depth : int
        Number of 2x2 max-pool steps; features exist at strides 1, 2, ..., 2**depth.
    base_width : int
        Channels of the first block; doubled after each pooling.
    """

    def __init__(self, in_channels: int, depth: int = 4, base_width: int = 32):
        super().__init__()
        if depth < 1 or base_width < 1:
            raise ValueError("U-Net encoder needs depth >= 1 and base_width >= 1")
        widths = [base_width * 2**i for i in range(depth + 1)]
        self.stem = conv_block(in_channels, widths[0])
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), conv_block(widths[i], widths[i + 1]))
            for i in range(depth)
        )
        self.channels = widths
        self.strides = [2**i for i in range(depth + 1)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(x)]
        for down in self.downs:
            feats.append(down(feats[-1]))
        return feats


class TimmEncoder(FeatureEncoder):
    """A timm backbone created with ``features_only=True``."""

    def __init__(self, name: str, in_channels: int, pretrained: bool = False, **kwargs):
        super().__init__()
        import timm

        if name not in timm.list_models() and name not in timm.list_models(pretrained=True):
            raise ValueError(
                f"unknown timm model {name!r}; see timm.list_models() for the available names"
            )
        try:
            self.body = timm.create_model(
                name, features_only=True, pretrained=pretrained, in_chans=in_channels, **kwargs
            )
        except RuntimeError as exc:
            if "features_only" in str(exc) or "feature" in str(exc).lower():
                raise ValueError(
                    f"timm model {name!r} does not support features_only; choose a CNN backbone"
                ) from exc
            if pretrained:
                raise _download_error(name, exc) from exc
            raise
        except Exception as exc:  # network and hub errors come in many types
            if pretrained:
                raise _download_error(name, exc) from exc
            raise
        self.channels = list(self.body.feature_info.channels())
        self.strides = list(self.body.feature_info.reduction())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.body(x))


def _download_error(name: str, exc: Exception) -> PretrainedWeightsError:
    return PretrainedWeightsError(
        f"could not download ImageNet weights for timm model {name!r} "
        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}); "
        "without network access pass a local weights file instead (encoder_weights=PATH, "
        "or --encoder-weights PATH)"
    )


@dataclass(frozen=True)
class ProbedFeature:
    """Where a feature map comes from: the ``call``-th output of submodule ``name``."""

    name: str
    call: int
    channels: int
    stride: int


class _StopForward(Exception):
    """Raised from a hook once the deepest wanted feature map is captured."""


def _record_outputs(module: nn.Module, x: torch.Tensor) -> list[tuple[str, int, tuple]]:
    records: list[tuple[str, int, tuple]] = []
    calls: dict[str, int] = {}
    handles = []

    def make_hook(name):
        def hook(_mod, _inp, out):
            k = calls.get(name, 0)
            calls[name] = k + 1
            if isinstance(out, torch.Tensor) and out.ndim == 4:
                records.append((name, k, tuple(out.shape)))

        return hook

    for name, sub in module.named_modules():
        handles.append(sub.register_forward_hook(make_hook(name)))
    try:
        with torch.no_grad():
            module(x)
    finally:
        for h in handles:
            h.remove()
    return records


def probe_features(
    module: nn.Module, in_channels: int, sizes: tuple[int, int] = (224, 320)
) -> list[ProbedFeature]:
    """Find the feature maps of an arbitrary CNN by running it with forward hooks.

    For each stride the module reaches, the last output at that stride before the first
    output at a larger stride is taken (the fastai Dynamic U-Net rule). Two probe sizes are
    used so that outputs whose size does not scale with the input (global pooling, heads)
    are ignored.

    Parameters
    ----------
    module : torch.nn.Module
        The encoder; called as ``module(x)`` with ``x`` of shape (1, in_channels, H, W).
    in_channels : int
        Channels of the probe input.
    sizes : tuple of int
        Two probe sizes, both multiples of the deepest stride expected.

    Returns
    -------
    list of ProbedFeature
        Ordered by increasing stride.
    """
    was_training = module.training
    module.eval()
    try:
        per_size = []
        for s in sizes:
            recs = _record_outputs(module, torch.zeros(1, in_channels, s, s))
            per_size.append({(n, k): (shape, s) for n, k, shape in recs})
            if s == sizes[0]:
                order = [(n, k) for n, k, _ in recs]
    finally:
        module.train(was_training)

    def stride_of(shape, s):
        h, w = shape[2], shape[3]
        if h < 2 or w < 2 or s % h or s % w or s // h != s // w:
            return None
        return s // h

    features: dict[int, ProbedFeature] = {}
    deepest = 0
    for key in order:
        strides = {stride_of(*d[key]) if key in d else None for d in per_size}
        if len(strides) != 1 or None in strides:
            continue
        (stride,) = strides
        if stride & (stride - 1):  # not a power of two
            continue
        if stride < deepest:
            continue
        deepest = stride
        channels = per_size[0][key][0][1]
        features[stride] = ProbedFeature(key[0], key[1], channels, stride)
    if not features:
        raise ValueError(
            "probing the encoder found no 4D feature maps; it must be a CNN taking "
            "(N, C, H, W) images"
        )
    return [features[s] for s in sorted(features)]


class ProbedEncoder(FeatureEncoder):
    """Wrap an arbitrary CNN; its feature maps are captured with forward hooks."""

    def __init__(self, module: nn.Module, in_channels: int):
        super().__init__()
        adapt_first_conv(module, in_channels)
        self.body = module
        self.features = probe_features(module, in_channels)
        self.channels = [f.channels for f in self.features]
        self.strides = [f.stride for f in self.features]
        self._wanted = {(f.name, f.call): i for i, f in enumerate(self.features)}
        self._last = (self.features[-1].name, self.features[-1].call)
        self._captured: list[torch.Tensor | None] | None = None
        self._calls: dict[str, int] = {}
        names = {f.name for f in self.features}
        for name, sub in module.named_modules():
            if name in names:
                sub.register_forward_hook(self._make_hook(name))

    def _make_hook(self, name):
        def hook(_mod, _inp, out):
            if self._captured is None:
                return
            k = self._calls.get(name, 0)
            self._calls[name] = k + 1
            i = self._wanted.get((name, k))
            if i is not None:
                self._captured[i] = out
                if (name, k) == self._last:
                    raise _StopForward  # the rest of the network (e.g. its head) is not needed

        return hook

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self._captured = [None] * len(self.features)
        self._calls = {}
        try:
            self.body(x)
        except _StopForward:
            pass
        feats, self._captured = self._captured, None
        if any(f is None for f in feats):
            raise RuntimeError("the encoder did not produce the feature maps found when probing")
        return feats


def first_conv(module: nn.Module) -> tuple[nn.Module, str, nn.Conv2d] | None:
    """Return (parent, attribute, conv) of the first ``Conv2d`` in definition order."""
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Conv2d):
            parent = module
            *path, attr = name.split(".")
            for p in path:
                parent = getattr(parent, p)
            return parent, attr, sub
    return None


def adapt_first_conv(module: nn.Module, in_channels: int) -> None:
    """Make the first convolution accept ``in_channels`` channels, keeping its filters.

    Pretrained RGB filters are summed for one channel and cycled and rescaled for more
    (timm's ``adapt_input_conv``), so pretrained knowledge is kept instead of discarded.
    """
    found = first_conv(module)
    if found is None:
        raise ValueError("the encoder has no Conv2d layer")
    parent, attr, conv = found
    if conv.in_channels == in_channels:
        return
    from timm.models import adapt_input_conv

    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        conv.bias is not None,
        conv.padding_mode,
    )
    with torch.no_grad():
        new.weight.copy_(adapt_input_conv(in_channels, conv.weight.detach()))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    setattr(parent, attr, new)


def import_builder(path: str):
    """Import ``"package.module:callable"`` and return the callable."""
    mod_name, _, attr = path.partition(":")
    if not mod_name or not attr:
        raise ValueError(f"builder path must look like 'package.module:function', got {path!r}")
    try:
        obj = importlib.import_module(mod_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import encoder builder {path!r}: {exc}") from exc
    return obj


def _strip_prefixes(state: dict) -> dict:
    for prefix in ("module.", "model.", "encoder.", "backbone."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def load_encoder_weights(encoder: nn.Module, path: str | Path) -> dict[str, int]:
    """Load pretrained weights for an encoder from a local file.

    Keys are matched by name (common prefixes such as ``module.`` removed). When names differ,
    as between the TensorFlow-derived EfficientNet ports and timm, tensors are matched in order
    by shape; this only succeeds when every encoder tensor finds its counterpart in sequence.
    A first convolution with a different number of input channels is adapted.

    Parameters
    ----------
    encoder : torch.nn.Module
        Typically ``model.encoder.body`` of a built model.
    path : str or Path
        A ``.pth``/``.pt`` file with a state dict (tensors only).

    Returns
    -------
    dict
        ``{"matched": n, "by": "name" | "order"}``.
    """
    path = Path(path)
    if not path.is_file():
        raise PretrainedWeightsError(f"encoder weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PretrainedWeightsError(f"cannot read encoder weights from {path}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PretrainedWeightsError(f"{path} does not hold a state dict of tensors")
    state = _strip_prefixes(state)
    own = encoder.state_dict()
    conv_key = next(
        (f"{n}.weight" for n, m in encoder.named_modules() if isinstance(m, nn.Conv2d)), None
    )

    def fits(k_own, v_file):
        v_own = own[k_own]
        if v_own.shape == v_file.shape:
            return True
        return k_own == conv_key and v_own.shape[0] == v_file.shape[0] and v_own.shape[2:] == (
            v_file.shape[2:]
        )

    by_name = {k: state[k] for k in own if k in state and fits(k, state[k])}
    if len(by_name) == len(own):
        mapping, how = by_name, "name"
    else:
        mapping, how = {}, "order"
        file_items = list(state.items())
        j = 0
        for k in own:
            while j < len(file_items) and not fits(k, file_items[j][1]):
                j += 1
            if j == len(file_items):
                raise PretrainedWeightsError(
                    f"weights in {path} do not fit the encoder: no tensor for {k!r} "
                    f"{tuple(own[k].shape)} (matched {len(mapping)} of {len(own)})"
                )
            mapping[k] = file_items[j][1]
            j += 1
    if conv_key is not None and mapping[conv_key].shape != own[conv_key].shape:
        from timm.models import adapt_input_conv

        mapping[conv_key] = adapt_input_conv(own[conv_key].shape[1], mapping[conv_key])
    encoder.load_state_dict(mapping, strict=True)
    return {"matched": len(mapping), "by": how}
