"""BioImage Model Zoo packages (bioimage.io model spec 0.5) as models for the Predictor.

A package (a zip, or a folder with ``rdf.yaml``) runs through the same tiled inference as a
checkpoint: its ONNX weights with ONNX Runtime (on a GPU, its TorchScript weights when it has
them), its own preprocessing, its outputs mapped to a target mode. Read with a YAML parser
and zipfile only: nothing in a package is executed as Python, so a package that builds its
network from Python code (``pytorch_state_dict`` with an ``architecture``) is refused, and
pickled weights are never loaded. Written by hand rather than with ``bioimageio.core``: that
package is optional, and its loaders would run such code.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

#: Names of the description file inside a package.
RDF_NAMES = ("rdf.yaml", "bioimageio.yaml")
#: What our own exports keep their settings under (``config``).
CONFIG_KEY = "napari_unetseg"
#: Output channel names (lower case) of a foreground + boundary model from elsewhere.
FOREGROUND_NAMES = ("foreground", "mask", "nuclei", "cells", "fg", "semantic")
BOUNDARY_NAMES = ("boundary", "boundaries", "border", "borders", "contour", "contours", "edge",
                  "edges")


class PackageError(ValueError):
    """A package that cannot be used here; the message says why and what would do."""


def is_package(model) -> bool:
    """Whether ``model`` names a bioimage.io package (a .zip, an rdf.yaml, or its folder)."""
    if not isinstance(model, (str, Path)) or str(model) == "default":
        return False
    p = Path(model)
    return (p.suffix.lower() == ".zip" or p.name.lower() in RDF_NAMES
            or (p.is_dir() and any((p / n).is_file() for n in RDF_NAMES)))


@dataclass
class PackagedModel:
    """What the Predictor needs of a model, read from a package."""

    source: str
    name: str
    targets: str
    normalization: dict
    thresholds: dict
    diameter: float | None
    total_stride: int
    in_channels: int
    out_channels: int
    files: dict = field(repr=False)  # weight format -> bytes
    sigmoid: bool = False  # the package declares a sigmoid after its weights
    channel_order: tuple[int, ...] | None = None
    config: dict = field(default_factory=dict, repr=False)

    @property
    def head(self):
        return SimpleNamespace(out_channels=self.out_channels)

    def info(self) -> dict:
        """The package described like a checkpoint's metadata (for panels and ``info``)."""
        return {"path": self.source, "package": self.name, "targets": self.targets,
                "thresholds": dict(self.thresholds), "diameter": self.diameter,
                "normalization": dict(self.normalization),
                "provenance": dict(self.config.get("provenance") or {}),
                "config": {"encoder": f"bioimage.io package ({', '.join(self.files)})",
                           "in_channels": self.in_channels}}

    def runner(self, device, precision: str = "auto"):
        """``run(batch) -> probabilities`` on ``device``; see :func:`.runtime.OnnxRunner`."""
        try:
            run = self._weights_runner(device, precision)
        except (ValueError, ImportError):
            raise
        except Exception as exc:  # a broken or disguised weights file
            text = str(exc).strip()
            msg = text.splitlines()[0][:160] if text else type(exc).__name__
            raise PackageError(f"{self.source}: its weights cannot be loaded ({msg})") from None
        if not self.sigmoid and self.channel_order is None:
            return run
        return _Adapted(run, self.sigmoid, self.channel_order)

    def _weights_runner(self, device, precision: str):
        from .runtime import OnnxRunner

        if device.type != "cpu" and "torchscript" in self.files:
            run = _TorchScriptRunner(self.files["torchscript"], device)
        elif "onnx" in self.files:
            use_int8 = device.type == "cpu" and precision != "fp32" and "int8" in self.files
            if precision == "int8" and "int8" not in self.files:
                raise ValueError(f"{self.source} has no int8 weights; use precision fp32")
            run = OnnxRunner(None, onnx_bytes=self.files["int8" if use_int8 else "onnx"],
                             backend="onnxruntime-int8" if use_int8 else "onnxruntime")
        else:
            run = _TorchScriptRunner(self.files["torchscript"], device)
        return run


class _Adapted:
    """A runner whose outputs get the package's sigmoid and our channel order."""

    def __init__(self, run, sigmoid: bool, order):
        self.run, self.sigmoid, self.order = run, sigmoid, order
        self.backend = run.backend

    def __call__(self, batch):
        y = self.run(batch)
        if self.order is not None:
            y = y[:, list(self.order)]
        return 1 / (1 + np.exp(-y)) if self.sigmoid else y


class _TorchScriptRunner:
    backend = "torchscript"

    def __init__(self, data: bytes, device):
        import torch

        self.device = device
        self.module = torch.jit.load(io.BytesIO(data), map_location=device).eval()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            y = self.module(torch.from_numpy(np.ascontiguousarray(batch)).to(self.device))
        return y.float().cpu().numpy()


def _open(path: Path) -> tuple[dict, callable]:
    """(the parsed description, read(relative name) -> bytes)."""
    import yaml

    if path.suffix.lower() == ".zip":
        try:
            archive = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise PackageError(f"{path}: not a readable zip ({exc})") from None
        names = set(archive.namelist())
        rdf = next((n for n in RDF_NAMES if n in names), None)
        if rdf is None:
            raise PackageError(f"{path}: no rdf.yaml in the zip; not a bioimage.io package")

        def read(name: str) -> bytes:
            if name not in names:
                raise PackageError(f"{path}: the package lists {name}, which is not in the zip")
            return archive.read(name)

        text = archive.read(rdf)
    else:
        folder = path if path.is_dir() else path.parent
        rdf_file = next(folder / n for n in RDF_NAMES if (folder / n).is_file()) \
            if path.is_dir() else path

        def read(name: str) -> bytes:
            f = (folder / name).resolve()
            if folder.resolve() not in f.parents or not f.is_file():
                raise PackageError(f"{path}: the package lists {name}, which is not a file "
                                   "in its folder")
            return f.read_bytes()

        text = rdf_file.read_bytes()
    try:
        rdf = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PackageError(f"{path}: rdf.yaml is not valid YAML ({str(exc).splitlines()[0]})") \
            from None
    if not isinstance(rdf, dict) or rdf.get("type") != "model":
        raise PackageError(f"{path}: not a bioimage.io model description")
    return rdf, read


def _source(entry) -> str:
    src = entry.get("source") if isinstance(entry, dict) else None
    if not isinstance(src, str) or "://" in src:
        raise PackageError(f"weights at {src!r}: only files inside the package are read")
    return src


def _weights(path: Path, rdf: dict, read, trust_code: bool) -> dict:
    weights = rdf.get("weights") or {}
    files = {fmt: read(_source(weights[fmt])) for fmt in ("onnx", "torchscript")
             if fmt in weights}
    if files:
        return files
    if "pytorch_state_dict" in weights:
        why = ("builds its network from Python code in the package (pytorch_state_dict with an "
               "architecture)")
        if not trust_code:
            raise PackageError(f"{path} {why}; refused: nothing from a package runs as Python "
                               "code. Ask for ONNX or TorchScript weights")
        raise PackageError(f"{path} {why}; only ONNX and TorchScript weights are supported")
    raise PackageError(f"{path}: weights as {', '.join(weights) or 'nothing'}; napari-unetseg "
                       "runs ONNX or TorchScript weights")


def _axis_ids(tensor: dict) -> list[str]:
    ids = []
    for a in tensor.get("axes") or []:
        ids.append(a.get("type") if a.get("type") in ("batch", "channel") else a.get("id"))
    return ids


def _stride(inp: dict) -> int:
    steps = []
    for a in inp["axes"]:
        if a.get("type") == "space":
            size = a.get("size")
            if not isinstance(size, dict) or "step" not in size:
                raise PackageError(f"input axis {a.get('id')} has a fixed size ({size}); "
                                   "napari-unetseg tiles images of any size")
            steps.append(int(size["step"]))
    return int(np.lcm.reduce(steps)) if steps else 1


def _normalization(inp: dict, n_in: int) -> dict:
    norm = None
    for step in inp.get("preprocessing") or []:
        kind, kw = step.get("id"), step.get("kwargs") or {}
        if kind == "ensure_dtype":
            continue
        if kind == "scale_range" and norm is None:
            axes = kw.get("axes")
            if n_in > 1 and axes is not None and "channel" not in axes:
                raise PackageError("the package scales each channel on its own (scale_range "
                                   "without the channel axis); napari-unetseg scales all "
                                   "channels together")
            norm = {"kind": "percentile", "low": float(kw.get("min_percentile", 0.0)),
                    "high": float(kw.get("max_percentile", 100.0))}
        elif kind == "zero_mean_unit_variance" and norm is None:
            norm = {"kind": "mean_std"}
        else:
            raise PackageError(f"input preprocessing {kind!r} is not supported (scale_range "
                               "and zero_mean_unit_variance are)")
    norm = norm or {"kind": "percentile", "low": 0.0, "high": 100.0}
    return {**norm, "channels": n_in, "invert_bright_background": False}


def _targets(out: dict, ours: dict) -> tuple[str, tuple[int, ...] | None, bool]:
    """(target mode, channel order or None, sigmoid to apply) of the package's output."""
    sigmoid = False
    for step in out.get("postprocessing") or []:
        if step.get("id") == "sigmoid":
            sigmoid = True
        elif step.get("id") != "ensure_dtype":
            raise PackageError(f"output postprocessing {step.get('id')!r} is not supported")
    channel = next((a for a in out["axes"] if a.get("type") == "channel"), None)
    names = [str(n).lower() for n in (channel or {}).get("channel_names", [])]
    declared = ours.get("output_channels")
    if ours.get("targets") and not declared:
        return ours["targets"], None, sigmoid
    if isinstance(declared, dict) and {"foreground", "boundary"} <= set(declared):
        fg, bd = [declared["foreground"]], [declared["boundary"]]
        if not all(isinstance(i, int) and 0 <= i < len(names) for i in fg + bd):
            raise PackageError(f"config.{CONFIG_KEY}.output_channels {declared} names channels "
                               f"outside the output's {len(names)}")
    else:
        fg = [i for i, n in enumerate(names) if n in FOREGROUND_NAMES]
        bd = [i for i, n in enumerate(names) if n in BOUNDARY_NAMES]
    if len(fg) == 1 and len(bd) == 1:
        order = (fg[0], bd[0])
        return "mask_border", None if order == (0, 1) and len(names) == 2 else order, sigmoid
    raise PackageError(
        f"the package outputs channels {names or 'without names'}; napari-unetseg needs a "
        "foreground and a boundary map: channels named e.g. 'foreground' and 'boundary', or "
        f"declared in rdf.yaml as config.{CONFIG_KEY}.output_channels: "
        "{foreground: i, boundary: j}")


def read_package(path, trust_code: bool = False) -> PackagedModel:
    """Read a bioimage.io model package (zip, rdf.yaml or its folder) for the Predictor.

    Raises
    ------
    PackageError
        One line naming what the package has and what would be needed.
    """
    from ..base.thresholds import DEFAULT_THRESHOLDS

    path = Path(path)
    if not path.exists():
        raise PackageError(f"{path}: no such file")
    rdf, read = _open(path)
    version = str(rdf.get("format_version", ""))
    if not version.startswith("0.5"):
        raise PackageError(f"{path}: model format {version or '?'}; napari-unetseg reads "
                           "format 0.5 (re-save it with bioimageio.spec 0.5)")
    inputs, outputs = rdf.get("inputs") or [], rdf.get("outputs") or []
    if len(inputs) != 1 or len(outputs) != 1:
        raise PackageError(f"{path}: {len(inputs)} inputs and {len(outputs)} outputs; "
                           "napari-unetseg runs models with one image in and one map out")
    inp, out = inputs[0], outputs[0]
    for t in (inp, out):
        if _axis_ids(t) != ["batch", "channel", "y", "x"]:
            raise PackageError(f"{path}: tensor {t.get('id')} has axes {_axis_ids(t)}; "
                               "napari-unetseg runs 2D models with axes batch, channel, y, x")
    ours = (rdf.get("config") or {}).get(CONFIG_KEY) or {}
    n_in = len(next(a for a in inp["axes"] if a.get("type") == "channel")["channel_names"])
    n_out = len(next(a for a in out["axes"] if a.get("type") == "channel")["channel_names"])
    targets, order, sigmoid = _targets(out, ours)
    files = _weights(path, rdf, read, trust_code)
    if ours.get("int8") and "onnx" in files:
        files["int8"] = read(ours["int8"])
    return PackagedModel(
        source=str(path), name=str(rdf.get("name", path.stem)), targets=targets,
        normalization=ours.get("normalization") or _normalization(inp, n_in),
        thresholds=dict(ours.get("thresholds") or DEFAULT_THRESHOLDS),
        diameter=ours.get("diameter"), total_stride=_stride(inp), in_channels=n_in,
        out_channels=2 if order is not None else n_out, files=files, sigmoid=sigmoid,
        channel_order=order, config=ours)


__all__ = ["PackageError", "PackagedModel", "is_package", "read_package"]
