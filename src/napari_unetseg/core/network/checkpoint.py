"""One-file checkpoints: config, weights, normalization, thresholds and provenance.

Files are read with ``torch.load(weights_only=True)``: only tensors and plain containers are
accepted, so a checkpoint carrying pickled code is refused instead of executed.
"""

from __future__ import annotations

import copy
import datetime as _dt
import zipfile
from pathlib import Path
from typing import Any

from ..base.normalize import DEFAULT_NORMALIZATION
from ..base.thresholds import DEFAULT_THRESHOLDS, KEYS, ThresholdError, Thresholds

FORMAT_VERSION = 1
_MAGIC = "napari-unetseg checkpoint"
#: The bundled default nuclei model (shipped inside the package).
DEFAULT_MODEL_PATH = Path(__file__).resolve().parents[2] / "models" / "default_nuclei.pt"


class CheckpointError(Exception):
    """A checkpoint cannot be written or read; the message is one sentence for the user."""


def _package_version() -> str:
    from napari_unetseg import __version__

    return __version__


def save_checkpoint(
    model,
    path: str | Path,
    *,
    provenance: dict[str, Any] | None = None,
    thresholds: dict[str, Any] | None = None,
    normalization: dict[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write a model and everything needed to use it to one ``.pt`` file.

    Parameters
    ----------
    model : DynamicUNet
        Built with :func:`build_model` from a rebuildable encoder spec.
    path : str or Path
        Destination; written atomically (a temporary file, then renamed).
    provenance : dict, optional
        Free-form facts (training data, epochs, scores, ...); version and date are added.
    thresholds, normalization : dict, optional
        Default post-processing thresholds and input normalization; the model's own when
        omitted.
    half : bool
        Store floating-point weights as float16 (half the size; loaded back as float32).
    """
    import torch

    config = copy.deepcopy(model.config)
    if config["encoder"].startswith("custom:"):
        raise CheckpointError(
            "cannot save a model whose encoder is an nn.Module instance: it cannot be rebuilt; "
            "build it with encoder='module:package.module:function' instead"
        )
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        state[k] = v.half() if half and v.is_floating_point() else v.clone()
    prov = dict(provenance or {})
    prov.setdefault("package_version", _package_version())
    prov.setdefault("date", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    payload = {
        "format": _MAGIC,
        "format_version": FORMAT_VERSION,
        "config": config,
        "targets": config["targets"],
        "normalization": dict(normalization or getattr(model, "normalization", None)
                              or DEFAULT_NORMALIZATION),
        "thresholds": dict(thresholds or getattr(model, "thresholds", None)
                           or DEFAULT_THRESHOLDS),
        # Canonical nucleus diameter of a size-normalized model (None: works at any size).
        "diameter": getattr(model, "diameter", None),
        "provenance": prov,
        "state_dict": state,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(payload, tmp)
        tmp.replace(path)
    except (OSError, RuntimeError) as exc:  # a full disk: no half-written file stays
        tmp.unlink(missing_ok=True)
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise CheckpointError(f"cannot write {path}: {reason}") from None
    return path


def _read(path: Path) -> dict:
    import pickle

    import torch

    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    if path.suffix.lower() in (".zip", ".yaml"):
        raise CheckpointError(f"{path} is a bioimage.io package, not a checkpoint: packages "
                              "segment images, but training and quantizing start from the "
                              "checkpoint (.pt) it was exported from")
    with open(path, "rb") as f:
        head = f.read(4)
    if head != b"PK\x03\x04":
        raise CheckpointError(f"{path} is not a checkpoint file (not a PyTorch archive)")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is truncated or damaged (incomplete archive)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc) or "GLOBAL" in str(exc):
            raise CheckpointError(
                f"{path} contains pickled Python objects and is refused for safety; "
                "only checkpoints written by napari-unetseg can be loaded"
            ) from None
        raise CheckpointError(f"{path} is not a napari-unetseg checkpoint") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path} is truncated or damaged ({msg})") from None
    if not isinstance(payload, dict) or payload.get("format") != _MAGIC:
        raise CheckpointError(f"{path} is a PyTorch file but not a napari-unetseg checkpoint")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer napari-unetseg (format {version}, this version "
            f"reads up to {FORMAT_VERSION}); upgrade napari-unetseg"
        )
    return payload


def checkpoint_path(path: str | Path) -> Path:
    """Resolve ``"default"`` to the bundled model; other values are paths."""
    if str(path) == "default":
        return DEFAULT_MODEL_PATH
    return Path(path).expanduser()


def read_checkpoint_info(path: str | Path) -> dict[str, Any]:
    """Metadata of a checkpoint (everything except the weights), without building the model."""
    p = checkpoint_path(path)
    payload = _read(p)
    info = {k: v for k, v in payload.items() if k not in ("state_dict", "format")}
    info["path"] = str(p)
    info["parameters"] = int(
        sum(v.numel() for k, v in payload["state_dict"].items() if "running" not in k
            and "num_batches" not in k)
    )
    return info


#: Sane bounds for an architecture read from a file: beyond them a tiny file could make
#: building the model take all memory.
ARCH_LIMITS = {"depth": 8, "base_width": 512, "in_channels": 16, "decoder_width": 4096,
               "decoder_stages": 12}
#: Keys of the model configuration that are passed on to :func:`build_model`.
_BUILD_KEYS = ("encoder", "in_channels", "targets", "upsample", "encoder_kwargs",
               "decoder_channels")
# timm arguments that would read files or reach the network while building.
_UNSAFE_TIMM_WORDS = ("checkpoint", "pretrained", "file", "url", "path", "hub", "cache")


def check_normalization(norm: dict, in_channels, path="normalization") -> None:
    """Refuse input settings this program cannot apply (one sentence naming the value)."""
    import math

    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if norm.get("kind") != "percentile":
        raise CheckpointError(f"{path}: input normalization {norm.get('kind')!r} is unknown "
                              "(this program applies 'percentile')")
    low, high = norm.get("low"), norm.get("high")
    if not (number(low) and number(high) and 0 <= low < high <= 100):
        raise CheckpointError(f"{path}: normalization percentiles {low!r}, {high!r} must be "
                              "numbers with 0 <= low < high <= 100")
    channels = norm.get("channels")
    if channels not in (1, 2, 3, 4) or channels != in_channels:
        raise CheckpointError(f"{path}: the model takes {in_channels!r} input channels and "
                              f"its normalization {channels!r}; 1 to 4, the same for both, "
                              "are supported")


def check_thresholds(thresholds: dict, path="thresholds") -> dict:
    """Validated watershed thresholds (all three present, see :class:`.Thresholds`), in
    their serialized form.

    Raises
    ------
    CheckpointError
        One sentence naming the bad value.
    """
    missing = [k for k in KEYS if k not in thresholds]
    if missing:
        raise CheckpointError(f"{path}: {missing[0]} is missing")
    try:
        return Thresholds.of(thresholds).as_dict()
    except ThresholdError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def checked_config(config, path, trust_code: bool = False) -> dict:
    """The build arguments of a checkpoint's configuration, refused when unsafe.

    Building from a file never imports code the file names (``module:`` encoders) unless
    ``trust_code`` is given, never downloads or reads other files, and refuses
    architectures beyond :data:`ARCH_LIMITS`.

    Raises
    ------
    CheckpointError
        One sentence naming the problem and what to do.
    """
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} has no model configuration; it is not a napari-unetseg "
                              "checkpoint or is damaged")
    build = {k: config[k] for k in _BUILD_KEYS if k in config}
    encoder = build.get("encoder")
    if not isinstance(encoder, str):
        raise CheckpointError(f"{path}: the model configuration names no encoder")
    kwargs = build.get("encoder_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"{path}: encoder_kwargs must be a dict, got {type(kwargs).__name__}")
    if encoder.startswith("module:") and not trust_code:
        raise CheckpointError(
            f"{path} builds its encoder by calling {encoder[7:]!r}, code named in the file; "
            "refused for safety. Load it with trust_code=True (unetseg: --trust-code) only if "
            "you trust where the file came from"
        )
    if encoder.startswith("timm:"):
        bad = [k for k in kwargs if any(w in str(k).lower() for w in _UNSAFE_TIMM_WORDS)]
        if bad:
            raise CheckpointError(f"{path}: encoder argument {bad[0]!r} would read files or "
                                  "the network while building; refused")

    def bounded(name, value, limit):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
            raise CheckpointError(f"{path}: {name} = {value!r} is outside 1..{limit}; the file "
                                  "is damaged or not meant for this program")

    bounded("in_channels", build.get("in_channels"), ARCH_LIMITS["in_channels"])
    if encoder == "unet":
        for key in ("depth", "base_width"):
            if key in kwargs:
                bounded(f"encoder {key}", kwargs[key], ARCH_LIMITS[key])
    dec = build.get("decoder_channels")
    if dec is not None:
        if not isinstance(dec, list) or len(dec) > ARCH_LIMITS["decoder_stages"]:
            raise CheckpointError(f"{path}: decoder_channels must be a list of at most "
                                  f"{ARCH_LIMITS['decoder_stages']} widths")
        for w in dec:
            bounded("a decoder width", w, ARCH_LIMITS["decoder_width"])
    return build


#: Largest model a checkpoint may describe: the bundled one has 4 million parameters.
MAX_PARAMETERS = 200_000_000
#: Largest number of float values one layer may produce per input pixel (channels divided
#: by the layer's stride squared): with a 2048² tile, 256 of them are 4 GiB in one tensor.
MAX_VALUES_PER_PIXEL = 256


def check_size(model, in_channels: int = 3, path="the model", forward: bool = True) -> None:
    """Refuse an architecture whose size or working memory is absurd, from what it implies
    (parameters, and one forward pass on PyTorch's meta device, which computes shapes only)
    rather than from each configuration field alone: a 40 KB file can describe a model of
    billions of parameters or of 9 GB activations.
    """
    import torch

    n = sum(t.numel() for t in model.parameters())
    if n > MAX_PARAMETERS:
        raise CheckpointError(f"{path} describes a model of {n / 1e6:,.0f} million parameters "
                              f"(at most {MAX_PARAMETERS / 1e6:.0f} million are accepted); "
                              "the file is damaged or not meant for this program")
    if not forward:
        return
    largest = [0]

    def record(_module, _inputs, output):
        if isinstance(output, torch.Tensor):
            largest[0] = max(largest[0], output.numel())

    hooks = [m.register_forward_hook(record) for m in model.modules()]
    try:
        with torch.no_grad():
            model(torch.empty(1, in_channels, 256, 256, device="meta"))
    except Exception:
        return  # a model the meta device cannot run: its parameters were checked
    finally:
        for h in hooks:
            h.remove()
    per_pixel = largest[0] / (256 * 256)
    if per_pixel > MAX_VALUES_PER_PIXEL:
        raise CheckpointError(f"{path} describes layers of {per_pixel:,.0f} values per pixel "
                              f"(at most {MAX_VALUES_PER_PIXEL}); one image tile would need "
                              "tens of GB; the file is damaged or not meant for this program")


def _build_without_init(build: dict):
    """The model of a checkpoint with uninitialized weights (they are loaded right after).

    Built on PyTorch's meta device and then given empty memory: random initialization of
    every layer is wasted work here, and it froze the viewer while a panel loaded a model in
    a worker thread (README gives the times). Encoders
    that cannot be built on the meta device (a custom module probed by a forward pass may
    not) are built the ordinary way.
    """
    import torch

    from .model import build_model

    try:
        with torch.device("meta"):
            model = build_model(**build)
    except Exception:
        return build_model(**build)
    # Before any memory is given to it. timm encoders have the fixed widths of their names;
    # their forward pass on the meta device costs ~0.2 s, so only the parameters count.
    check_size(model, build.get("in_channels", 3),
               forward=build.get("encoder") == "unet" or build.get("decoder_channels")
               is not None)
    try:
        model = model.to_empty(device="cpu")
    except Exception:
        return build_model(**build)
    saved = set(model.state_dict())
    if any(name not in saved for name, _ in model.named_buffers()):
        # A buffer the checkpoint does not hold would stay uninitialized memory.
        return build_model(**build)
    return model


def load_checkpoint(path: str | Path, *, trust_code: bool = False):
    """Rebuild a model from a checkpoint.

    Parameters
    ----------
    path : str or Path
        A ``.pt`` file written by :func:`save_checkpoint`, or ``"default"``.
    trust_code : bool
        Allow an encoder built by a function the file names (``module:`` encoders). Off by
        default: such a file is refused (see :func:`checked_config`).

    Returns
    -------
    (DynamicUNet, dict)
        The model in eval mode (float32, CPU) and the checkpoint metadata.

    Raises
    ------
    CheckpointError
        Missing file, not a checkpoint, newer format, truncated file, or weights that do not
        fit the stored configuration.
    """
    import torch


    p = checkpoint_path(path)
    payload = _read(p)
    build = checked_config(payload.get("config"), p, trust_code)
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{p} holds no weights (state_dict of tensors); it is damaged")
    for key in ("normalization", "thresholds"):
        if not isinstance(payload.get(key), dict):
            raise CheckpointError(f"{p} has no {key} settings; it is damaged")
    thresholds = check_thresholds(payload["thresholds"], p)
    check_normalization(payload["normalization"], build.get("in_channels"), p)
    try:
        model = _build_without_init(build)
    except Exception as exc:  # an unknown encoder, a missing builder module ...
        raise CheckpointError(f"cannot rebuild the model stored in {p}: {exc}") from None
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(
            f"the weights in {p} do not fit its model configuration ({first})"
        ) from None
    model.normalization = dict(payload["normalization"])
    model.thresholds = thresholds
    diameter = payload.get("diameter")
    if diameter is not None and not (isinstance(diameter, (int, float)) and 0 < diameter < 1e4):
        raise CheckpointError(f"{p}: canonical diameter {diameter!r} is not a positive number")
    model.diameter = float(diameter) if diameter else None
    model.eval()
    info = {k: v for k, v in payload.items() if k not in ("state_dict", "format")}
    info["path"] = str(p)
    return model, info


def resolve_model(model, trust_code: bool = False):
    """Accept a model, a checkpoint path or ``"default"`` and return a model."""
    from torch import nn

    if isinstance(model, nn.Module):
        if not hasattr(model, "normalization"):
            raise TypeError("expected a model built by napari_unetseg.core.build_model")
        return model
    return load_checkpoint(model, trust_code=trust_code)[0]
