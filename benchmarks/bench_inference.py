"""CPU inference speed: plain eager PyTorch vs. the Predictor, same network and image.

Prints JSON. Both run in this process, interleaved (best of N rounds each), so machine noise
hits both alike. "eager" is the bundled model in eval mode under torch.no_grad() on the whole
normalized image, NCHW float32, default threads: what a user would write by hand. "ours" is
napari_unetseg's Predictor end to end (normalization, tiles, blending) on the same image:
with fp32 ONNX Runtime, and int8 when the model has an ``.int8.onnx`` file (see ``unetseg
quantize``). Both at the image's own size, as eager runs: a size-normalized model is given
its canonical diameter, so nothing is rescaled. "ours_int8_auto_diameter" is what a user gets
by default: the diameter estimated (up to three passes on the central 1024² region) and the
image rescaled to the canonical nucleus size, in MP/s of the original image.
"default_backend" says which of the two ``Predictor(model)`` runs.

"by_nucleus_size" (issue 29; from ``bench_diameter_cost.py``, skipped with
``--no-nucleus-sizes``): DSB2018 images of small, medium and large nuclei tiled to 1024², the
default path (automatic diameter) and the diameter given, each against eager PyTorch on the
pixels the network then sees, and what the estimate adds as a share of the prediction.

    python benchmarks/bench_inference.py [--model default] [--size 2048] [--rounds 3]
        [--no-nucleus-sizes]
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
    from napari_unetseg.core.io.images import read_image

    tile = read_image(SAMPLES / "brightfield_nuclei.png")
    reps = -(-size // tile.shape[0]), -(-size // tile.shape[1])
    return np.tile(tile, reps)[:size, :size].copy()


def main():
    import torch

    from napari_unetseg.core import Predictor, load_checkpoint
    from napari_unetseg.core.base.normalize import normalize_plane

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-nucleus-sizes", action="store_true")
    args = ap.parse_args()

    image = test_image(args.size)
    mp = image.size / 1e6
    model, _ = load_checkpoint(args.model)
    x = torch.from_numpy(normalize_plane(image, model.normalization))[None]

    def eager():
        with torch.no_grad():
            model.probabilities(model(x))

    t0 = time.perf_counter()
    fp32 = Predictor(args.model, "cpu", precision="fp32")
    setup_s = time.perf_counter() - t0
    same = model.diameter  # no rescaling: the same pixels as eager
    runners = {"eager": eager, "ours_fp32": lambda: fp32.predict(image, diameter=same)}
    try:
        int8 = Predictor(args.model, "cpu", precision="int8")
        runners["ours_int8"] = lambda: int8.predict(image, diameter=same)
        if model.diameter:
            runners["ours_int8_auto_diameter"] = lambda: int8.predict(image, diameter="auto")
    except ValueError:
        pass
    runs = {k: [] for k in runners}
    for fn in runners.values():
        fn()  # warm up
    for _ in range(args.rounds):
        for name, fn in runners.items():
            t = time.perf_counter()
            fn()
            runs[name].append(time.perf_counter() - t)
    best = {k: min(v) for k, v in runs.items()}
    out = {
        "image": f"{args.size}x{args.size} uint8 (bright-field sample, tiled)",
        "model": args.model,
        "torch_threads": torch.get_num_threads(),
        "seconds": {k: round(v, 3) for k, v in best.items()},
        "mpix_per_s": {k: round(mp / v, 3) for k, v in best.items()},
        "speedup_vs_eager": {k: round(best["eager"] / v, 2) for k, v in best.items()
                             if k != "eager"},
        "canonical_diameter": model.diameter,
        "fp32_setup_s": round(setup_s, 2),
        "default_backend": Predictor(args.model, "cpu").backend,
    }
    if not args.no_nucleus_sizes:
        from bench_diameter_cost import by_nucleus_size

        out["by_nucleus_size"] = by_nucleus_size(args.model, args.rounds)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
