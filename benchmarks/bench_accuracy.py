"""Validation figures of a model on the shared DSB2018 split, through the full pipeline.

Runs the same path as `unetseg predict` (segment_image with the checkpoint's default
thresholds) on the 66 images of val.txt, scores with the competition metric (also per
imaging style: stained tissue in color, gray with dark or bright background), and scores a
classical baseline (Otsu threshold + distance-transform watershed) in the same run.
Prints JSON.

    python benchmarks/bench_accuracy.py [--model default] [--tta] [--precision fp32|int8]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dsb2018_stage1_train"


def otsu_watershed(image: np.ndarray) -> np.ndarray:
    """Classical baseline: Otsu on gray (inverted when the background is bright), then a
    watershed on the distance transform seeded by its local maxima."""
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.filters import threshold_otsu
    from skimage.segmentation import watershed

    gray = image[..., :3].mean(-1) if image.ndim == 3 else image.astype(float)
    if np.median(gray) > gray.mean():
        gray = gray.max() - gray
    fg = gray > threshold_otsu(gray)
    dist = ndi.distance_transform_edt(fg)
    peaks = peak_local_max(dist, min_distance=5, labels=ndi.label(fg)[0], exclude_border=False)
    markers = np.zeros(fg.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(-dist, markers, mask=fg)


def main():
    from napari_unetseg.core import Predictor
    from napari_unetseg.core.base.styles import image_style
    from napari_unetseg.core.instances.metrics import image_scores, summarize
    from napari_unetseg.core.run.pipeline import segment_image
    from napari_unetseg.core.training.data import find_pairs, load_pair, read_id_list

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--tta", action="store_true")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "int8"])
    args = ap.parse_args()
    ids = read_id_list(DATA / "val.txt")
    pairs = find_pairs(DATA / "images", DATA / "labels", ids)
    pred = Predictor(args.model, "cpu", precision=args.precision)
    ours, base, styles = [], [], []
    t0 = time.perf_counter()
    for ip, lp in pairs:
        image, gt = load_pair(ip, lp)
        ours.append(image_scores(gt, segment_image(pred, image, tta=args.tta)))
        base.append(image_scores(gt, otsu_watershed(image)))
        styles.append(image_style(image, pred.normalization))
    seconds = time.perf_counter() - t0
    by_style = {
        style: dict(summarize([s for s, k in zip(ours, styles) if k == style]),
                    images=styles.count(style))
        for style in sorted(set(styles))
    }
    print(json.dumps({
        "model": args.model,
        "images": len(pairs),
        "thresholds": pred.thresholds,
        "tta": args.tta,
        "backend": pred.backend,
        "model_scores": summarize(ours),
        "model_scores_by_style": by_style,
        "otsu_watershed_scores": summarize(base),
        "seconds": round(seconds),
    }, indent=2))


if __name__ == "__main__":
    main()
