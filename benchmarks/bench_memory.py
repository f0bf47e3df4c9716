"""Peak memory of `unetseg predict` end to end (read -> maps -> labels -> TIFF).

Runs the command on an 8192x8192 uint8 image and on one of a single full tile (2048x2048), each
in a fresh process that reports its own peak RSS. The small run holds the model, the runtime
and one tile's working set; the difference divided by the extra pixels is the memory that
grows with the image. Prints JSON.

    python benchmarks/bench_memory.py [--size 8192] [--model default]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import test_image

CHILD = """
import resource, sys
from napari_unetseg.cli import main
code = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def peak_rss_mb(image_path: Path, out: Path, model: str) -> float:
    r = subprocess.run(
        [sys.executable, "-c", CHILD, "predict", str(image_path), "--out", str(out),
         "--model", model, "--quiet", "--overwrite"],
        capture_output=True, text=True, check=True,
    )
    return int(r.stderr.strip().splitlines()[-1]) / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--model", default="default")
    args = ap.parse_args()
    from napari_unetseg.core.inference.predictor import DEFAULT_TILE

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tifffile.imwrite(tmp / "big.tif", test_image(args.size))
        tifffile.imwrite(tmp / "small.tif", test_image(DEFAULT_TILE))
        small = peak_rss_mb(tmp / "small.tif", tmp / "out", args.model)
        big = peak_rss_mb(tmp / "big.tif", tmp / "out", args.model)
        labels = tifffile.imread(tmp / "out" / "big.tif")
    pixels = args.size**2 - DEFAULT_TILE**2
    print(json.dumps({
        "image": f"{args.size}x{args.size} uint8",
        "small_run": f"{DEFAULT_TILE}x{DEFAULT_TILE} (one tile)",
        "peak_rss_mb_small_run": round(small),
        "peak_rss_mb_big_run": round(big),
        "image_dependent_bytes_per_pixel": round((big - small) * 2**20 / pixels, 2),
        "objects": int(labels.max()),
        "labels_dtype": str(labels.dtype),
    }, indent=2))


if __name__ == "__main__":
    main()
