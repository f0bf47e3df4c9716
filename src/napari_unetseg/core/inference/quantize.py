"""Int8 quantization: a static QDQ ONNX model calibrated on typical images.

Above the :class:`~.predictor.Predictor` (it sizes calibration crops with one), apart from
the runtime below it, which only runs the files made here.
"""

from __future__ import annotations

import os

import numpy as np

from .runtime import SOURCE_KEY, export_onnx, file_sha256, int8_path


def quantize_int8(
    model,
    calibration: list[np.ndarray],
    out_path: str | os.PathLike,
    source: str | os.PathLike | None = None,
) -> str:
    """Write a static int8 (QDQ, per-channel) ONNX model calibrated on normalized tiles.

    Parameters
    ----------
    model : DynamicUNet
    calibration : list of ndarray
        (C, H, W) float32 inputs as the network sees them (normalized, stride-padded).
    out_path : path
        Destination ``.onnx`` file.
    source : path, optional
        The checkpoint file ``model`` was loaded from. Its SHA-256 is stored in the int8 model
        so that a checkpoint retrained in place is never run with a stale int8 file.
    """
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(calibration)

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {"x": x[None].astype(np.float32)}

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        pre = Path(tmp) / "pre.onnx"
        fp32.write_bytes(export_onnx(model))
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), os.fspath(out_path), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8)
    if source is not None:
        import onnx

        q = onnx.load(os.fspath(out_path))
        onnx.helper.set_model_props(q, {SOURCE_KEY: file_sha256(source)})
        onnx.save(q, os.fspath(out_path))
    return os.fspath(out_path)


def make_int8(checkpoint, images, *, n: int = 32, read=None, out=None,
              trust_code: bool = False, seed: int = 0):
    """Calibrate and write the int8 CPU model of a checkpoint from typical images.

    Parameters
    ----------
    checkpoint : str or Path
        The checkpoint (or ``"default"``); the int8 file records its SHA-256.
    images : sequence
        Typical images (2D planes), or anything ``read`` turns into one (file paths).
        ``n`` of them are picked at random, with imaging styles (fluorescence, tissue,
        bright-field) balanced by the square root of their counts as in training, one
        256 px crop each, rescaled to the model's canonical nucleus size when it has one.
    read : callable, optional
        ``read(item) -> ndarray``; items are arrays when omitted.
    out : str or Path, optional
        Default: ``<checkpoint>.int8.onnx`` beside it.

    Returns
    -------
    (Path, int)
        The file written and the number of calibration crops.
    """
    from pathlib import Path

    from ..base.normalize import normalize_plane
    from ..base.resample import resize_plane, scaled_shape
    from ..base.styles import image_style, style_balanced_weights
    from ..network.checkpoint import checkpoint_path, load_checkpoint
    from .predictor import Predictor

    read = read or (lambda x: x)
    src = checkpoint_path(checkpoint)
    model, _ = load_checkpoint(src, trust_code=trust_code)
    # Rare styles (stained tissue) would otherwise get few calibration crops, and int8
    # ranges fitted to fluorescence cost tissue accuracy.
    styles = [image_style(read(x), model.normalization) for x in images]
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(images), size=min(n, len(images)), replace=False,
                       p=style_balanced_weights(styles))
    sizer = Predictor(model, "cpu", precision="fp32") if model.diameter else None
    tiles = []
    for i in sorted(picks.tolist()):
        image = read(images[i])
        if sizer is not None:
            # Calibrate on what the network will see: nuclei at the canonical size.
            scale, _ = sizer.plane_scale(image)
            image = resize_plane(image, scaled_shape(image.shape, scale))
        x = normalize_plane(image, model.normalization)
        h, w = x.shape[1:]
        y0 = int(rng.integers(0, max(h - 256, 0) + 1))
        x0 = int(rng.integers(0, max(w - 256, 0) + 1))
        tile = x[:, y0 : y0 + 256, x0 : x0 + 256]
        m = model.total_stride
        pad = ((0, 0), (0, (-tile.shape[1]) % m), (0, (-tile.shape[2]) % m))
        tiles.append(np.pad(tile, pad, mode="edge"))
    out = Path(out) if out else Path(int8_path(src))
    quantize_int8(model, tiles, out, source=src)
    return out, len(tiles)


def make_int8_in_child(checkpoint, images, **kwargs):
    """:func:`make_int8` run in a child process of its own; same arguments and result.

    The ONNX exporter and ONNX Runtime's quantizer hold Python's lock for up to ~0.1 s at a
    time (stack samples in a copy of benchmarks/bench_ui_stall.py). Run in a thread beside a
    GUI, they freeze its event loop that long; a child process has its own lock. The child
    is a fresh interpreter running this module (``python -m``), so it never imports the
    caller's ``__main__``: multiprocessing's spawn re-ran a user's script there (a second
    viewer). ``images`` are arrays; they travel in a temporary ``.npz`` file.
    """
    import json
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    if kwargs.get("read") is not None:
        raise TypeError("make_int8_in_child takes arrays, not a read function")
    kwargs.pop("read", None)
    with tempfile.TemporaryDirectory(prefix="unetseg-int8-") as tmp:
        arrays = Path(tmp) / "images.npz"
        np.savez(arrays, *[np.asarray(im) for im in images])
        request = {"checkpoint": str(checkpoint), "images": str(arrays),
                   **{k: str(v) if isinstance(v, Path) else v for k, v in kwargs.items()}}
        done = subprocess.run([sys.executable, "-m", "napari_unetseg.core.inference.quantize",
                               json.dumps(request)], capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        raise RuntimeError(f"making the int8 model failed: {lines[-1]}")
    out, n = json.loads(done.stdout.strip().splitlines()[-1])
    return Path(out), int(n)


def _int8_child_main(argv: list[str]) -> None:
    """``python -m napari_unetseg.core.inference.quantize REQUEST`` (:func:`make_int8_in_child`)."""
    import json

    request = json.loads(argv[0])
    with np.load(request.pop("images")) as z:
        images = [z[f"arr_{i}"] for i in range(len(z.files))]
    out, n = make_int8(request.pop("checkpoint"), images, **request)
    print(json.dumps([str(out), n]))


if __name__ == "__main__":
    import sys

    _int8_child_main(sys.argv[1:])
