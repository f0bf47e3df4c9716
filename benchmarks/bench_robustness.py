"""How a model copes with images unlike its training set: other magnifications, other stains.

The project's proxy for unseen data (issue 15): the 66 images of val.txt at scales x0.5, x1 and
x2 (images bilinear, labels nearest), and the val colour images with a fixed stain shift
(``core.augment.stain_shift``, seed 0). Each through the same path as ``unetseg predict``
(``segment_image``, the checkpoint's default thresholds, automatic diameter). Also prints
how well the diameter was estimated (estimated / true median diameter, from the labels).
Prints JSON.

    python benchmarks/bench_robustness.py [--model default] [--diameter auto|true]
        [--conditions x1,x2,x0.5,stain] [--precision auto|fp32|int8] [--tta]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dsb2018_stage1_train"


def rescaled(image: np.ndarray, labels: np.ndarray, factor: float):
    """Image resized bilinearly and labels by nearest neighbour, by ``factor``."""
    import cv2

    from napari_unetseg.core.base.resample import resize_labels, scaled_shape

    shape = scaled_shape(labels.shape, factor)
    img = cv2.resize(np.ascontiguousarray(image), (shape[1], shape[0]),
                     interpolation=cv2.INTER_LINEAR)
    return img, resize_labels(labels, shape)


def condition_images(name: str, image: np.ndarray, labels: np.ndarray, style: str):
    """(image, labels) of one benchmark condition, or None when it does not apply."""
    from napari_unetseg.core.training.augment import stain_shift

    if name.startswith("x"):
        factor = float(name[1:])
        return (image, labels) if factor == 1 else rescaled(image, labels, factor)
    if name == "stain":
        if style != "color":
            return None
        return stain_shift(image[..., :3], seed=0), labels
    raise ValueError(f"unknown condition {name!r}")


def main(argv=None):
    from napari_unetseg.core import Predictor
    from napari_unetseg.core.base.styles import image_style
    from napari_unetseg.core.inference.diameter import median_diameter
    from napari_unetseg.core.instances.metrics import image_scores, summarize
    from napari_unetseg.core.run.pipeline import segment_image
    from napari_unetseg.core.training.data import find_pairs, load_pair, read_id_list

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--diameter", default="auto", choices=["auto", "true"],
                    help="estimate each image's diameter, or give the true one (an upper bound)")
    ap.add_argument("--conditions", default="x1,x2,x0.5,stain")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "int8"])
    ap.add_argument("--tta", action="store_true",
                    help="average the maps over flips (4x slower), as `unetseg predict --tta`")
    ap.add_argument("--limit", type=int, help="only the first N val images (quick look)")
    args = ap.parse_args(argv)
    pairs = find_pairs(DATA / "images", DATA / "labels", read_id_list(DATA / "val.txt"))
    pairs = pairs[: args.limit] if args.limit else pairs
    pred = Predictor(args.model, "cpu", precision=args.precision)
    loaded = [load_pair(ip, lp) for ip, lp in pairs]
    styles = [image_style(im, pred.normalization) for im, _ in loaded]
    results = {}
    for cond in args.conditions.split(","):
        per, per_style, ratios = [], {}, []
        t0 = time.perf_counter()
        for (image, gt), style in zip(loaded, styles):
            item = condition_images(cond, image, gt, style)
            if item is None:
                continue
            img, lab = item
            true_d = median_diameter(lab)
            info: dict = {}
            diameter = true_d if args.diameter == "true" else "auto"
            out = segment_image(pred, img, diameter=diameter, info=info, tta=args.tta)
            sc = image_scores(lab, out)
            per.append(sc)
            per_style.setdefault(style, []).append(sc)
            est = info["diameters"][0]
            if est and true_d:
                ratios.append(est / true_d)
        r = np.array(ratios) if ratios else np.array([np.nan])
        results[cond] = dict(
            summarize(per),
            images=len(per),
            by_style={k: dict(summarize(v), images=len(v)) for k, v in sorted(per_style.items())},
            diameter_ratio_quartiles=[round(float(q), 3) for q in np.nanpercentile(r, [25, 50,
                                                                                    75])],
            diameter_within_25pct=round(float(np.mean(np.abs(np.log(r)) < np.log(1.25))), 3),
            seconds=round(time.perf_counter() - t0),
        )
    print(json.dumps({"model": args.model, "canonical_diameter": pred.diameter,
                      "diameter": args.diameter, "tta": args.tta, "backend": pred.backend,
                      "thresholds": pred.thresholds, "conditions": results}, indent=2))


if __name__ == "__main__":
    main()
