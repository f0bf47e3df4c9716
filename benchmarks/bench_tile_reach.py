"""How far a tile edge disturbs the network's output: the basis of DEFAULT_OVERLAP.

Predicts a 1536² image (the bright-field sample tiled) whole, and a 768² crop from its
middle normalized like the whole image; prints, as JSON, the largest difference between the
two at each distance from the crop's edge. Tiles hand over in the middle of their overlap,
so outputs are used from overlap/2 px inside a tile edge.

    python benchmarks/bench_tile_reach.py [--model default] [--precision fp32]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import test_image


def main():
    from napari_unetseg.core import Predictor
    from napari_unetseg.core.base.normalize import plane_scaling
    from napari_unetseg.core.inference.predictor import DEFAULT_OVERLAP

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--precision", default="fp32", choices=["auto", "fp32", "int8"])
    args = ap.parse_args()
    pred = Predictor(args.model, "cpu", precision=args.precision)
    image = test_image(1536)
    whole = pred.predict_plane(image, tile=2048)
    y0, n = 384, 768
    crop = pred.predict_plane(image[y0 : y0 + n, y0 : y0 + n], tile=2048,
                              scaling=plane_scaling(image, pred.normalization))
    diff = np.abs(crop - whole[:, y0 : y0 + n, y0 : y0 + n]).max(0)
    yy, xx = np.mgrid[:n, :n]
    dist = np.minimum(np.minimum(yy, n - 1 - yy), np.minimum(xx, n - 1 - xx))
    print(json.dumps({
        "model": args.model,
        "backend": pred.backend,
        "default_overlap": DEFAULT_OVERLAP,
        "max_difference_by_distance_from_tile_edge_px": {
            r: round(float(diff[dist >= r].max()), 4) for r in (0, 32, 64, 96, 128, 160, 192, 256)
        },
    }, indent=2))


if __name__ == "__main__":
    main()
