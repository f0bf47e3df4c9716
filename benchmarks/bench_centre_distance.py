"""What the centre-distance channel of a ``mask_border_distance`` model adds, on val.txt.

Scores the same network's maps two ways, at the default thresholds and with tuned
thresholds: seeds from the centre distance (the model's own post-processing) and seeds from
mask - border (its first two channels alone). Then describes the predicted centres: the peak
of the distance in each true nucleus, and the share of the nucleus within 20 % of that peak
(the same share in the target shows how peaked a perfect prediction would be). Prints JSON.

    python benchmarks/bench_centre_distance.py MODEL.pt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dsb2018_stage1_train"


def centre_shape(maps, gts) -> dict:
    """Quartiles of the predicted peak per nucleus and of the share within 20 % of it."""
    from napari_unetseg.core.base.target_maps import instance_center_distance

    peaks, top, top_target = [], [], []
    for m, gt in zip(maps, gts):
        gt = gt.astype(np.int64)
        ids = np.unique(gt[gt > 0])
        if ids.size == 0:
            continue
        peak = np.asarray(ndi.maximum(m[2], gt, ids))
        lookup = np.zeros(int(gt.max()) + 1)
        lookup[ids] = peak
        near_top = m[2] > 0.8 * lookup[gt]
        peaks += list(peak)
        top += list(ndi.mean(near_top, gt, ids))
        top_target += list(ndi.mean(instance_center_distance(gt) > 0.8, gt, ids))
    q = [25, 50, 75]
    return {"nuclei": len(peaks),
            "peak_quartiles": np.percentile(peaks, q).round(3).tolist(),
            "share_within_20pct_of_peak_quartiles": np.percentile(top, q).round(3).tolist(),
            "same_in_target_quartiles": np.percentile(top_target, q).round(3).tolist()}


def main() -> None:
    from napari_unetseg.core.instances.postprocess import DEFAULT_THRESHOLDS
    from napari_unetseg.core.network.checkpoint import load_checkpoint
    from napari_unetseg.core.training.data import find_pairs, load_pair, read_id_list
    from napari_unetseg.core.training.validation import predict_maps, score_maps, tune_thresholds

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    args = ap.parse_args()
    model, _ = load_checkpoint(args.model)
    if model.targets != "mask_border_distance":
        raise SystemExit(f"{args.model}: targets are {model.targets}, not mask_border_distance")
    pairs = find_pairs(DATA / "images", DATA / "labels", read_id_list(DATA / "val.txt"))
    images, gts = zip(*(load_pair(ip, lp) for ip, lp in pairs))
    maps, _ = predict_maps(model, list(images))
    out = {"model": args.model, "images": len(maps)}
    for name, targets, mm in (("centre_distance_seeds", "mask_border_distance", maps),
                              ("mask_border_seeds", "mask_border", [m[:2] for m in maps])):
        default = score_maps(mm, list(gts), targets, DEFAULT_THRESHOLDS)
        tuned_t, tuned = tune_thresholds(mm, list(gts), targets)
        out[name] = {"default_thresholds": {k: round(v, 4) for k, v in default.items()},
                     "tuned": {k: round(v, 4) for k, v in tuned.items()},
                     "tuned_thresholds": tuned_t}
    out["predicted_centres"] = centre_shape(maps, gts)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
