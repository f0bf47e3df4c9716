"""CPU inference speed: plain eager PyTorch vs. the Predictor, same network and image.

Prints JSON. Both run in this process, interleaved (best of N rounds each), so machine noise
hits both alike. "eager" is the bundled model in eval mode under torch.no_grad() on the whole
normalized image, NCHW float32, default threads: what a user would write by hand. "ours" is
napari_unetseg's Predictor end to end (normalization, tiles, blending) on the same image.

    python benchmarks/bench_inference.py [--model default] [--size 2048] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"


def test_image(size: int) -> np.ndarray:
    """A real bright-field sample tiled to size x size (uint8, gray)."""
    from napari_unetseg.core.io import read_image

    tile = read_image(SAMPLES / "brightfield_nuclei.png")
    reps = -(-size // tile.shape[0]), -(-size // tile.shape[1])
    return np.tile(tile, reps)[:size, :size].copy()


def main():
    import torch

    from napari_unetseg.core import Predictor, load_checkpoint
    from napari_unetseg.core.normalize import normalize_plane

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    image = test_image(args.size)
    mp = image.size / 1e6
    model, _ = load_checkpoint(args.model)
    x = torch.from_numpy(normalize_plane(image, model.normalization))[None]

    def eager():
        with torch.no_grad():
            model.probabilities(model(x))

    t0 = time.perf_counter()
    predictor = Predictor(model, "cpu")
    setup_s = time.perf_counter() - t0

    def ours():
        predictor.predict(image)

    runs = {"eager": [], "ours": []}
    eager(), ours()  # warm up
    for _ in range(args.rounds):
        for name, fn in (("eager", eager), ("ours", ours)):
            t = time.perf_counter()
            fn()
            runs[name].append(time.perf_counter() - t)
    best = {k: min(v) for k, v in runs.items()}
    print(json.dumps({
        "image": f"{args.size}x{args.size} uint8 (bright-field sample, tiled)",
        "model": args.model,
        "torch_threads": torch.get_num_threads(),
        "backend": predictor.backend,
        "eager_s": round(best["eager"], 3),
        "ours_s": round(best["ours"], 3),
        "eager_mpix_per_s": round(mp / best["eager"], 3),
        "ours_mpix_per_s": round(mp / best["ours"], 3),
        "speedup": round(best["eager"] / best["ours"], 2),
        "ours_setup_s": round(setup_s, 2),
    }, indent=2))


if __name__ == "__main__":
    main()
