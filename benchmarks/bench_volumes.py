"""Z-stacks: one id per nucleus through Z with the modes 2d, stitch and 3d.

Volumes are generated from the fluorescence images of val.txt (core.synthetic: each
hand-drawn nucleus becomes a body over several planes, with depth fall-off, a PSF longer in
Z and noise; exact 3D ground truth), at Z steps of 2 and 4 pixels. Each mode goes through
the same code as ``unetseg predict --mode``; scores are the DSB metric on voxels (3D IoU).
Also prints seconds per volume, the live threshold update of the 3d mode (cached 3D
watershed) and peak memory per voxel of the 3d mode. Prints JSON.

    python benchmarks/bench_volumes.py [--model default] [--volumes 8] [--anisotropy 2,4]
        [--update-shape 64,512,512] [--split val|train] [--seed-sweep]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dsb2018_stage1_train"
SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"


def fluorescence_pairs(limit: int, normalization: dict, split: str = "val"):
    """(image, labels) of ``limit`` gray images of val.txt (or of the training images, every
    7th); the fluorescence sample image where the shared data is absent."""
    from napari_unetseg.core.base.styles import image_style
    from napari_unetseg.core.training.data import find_pairs, load_pair, read_id_list

    if not (DATA / "val.txt").exists():
        from napari_unetseg.core.io.images import read_image, read_labels

        return [(read_image(SAMPLES / "fluorescence_nuclei.png"),
                 read_labels(SAMPLES / "labels" / "fluorescence_nuclei.tif"))]
    val = read_id_list(DATA / "val.txt")
    if split == "val":
        pairs = find_pairs(DATA / "images", DATA / "labels", val)
    else:
        pairs = [p for p in find_pairs(DATA / "images", DATA / "labels")
                 if p[0].stem not in set(val)][::7]
    out = []
    for ip, lp in pairs:
        image, labels = load_pair(ip, lp)
        if image_style(image, normalization) == "gray" and labels.max() >= 5:
            out.append((image, labels))
        if len(out) == limit:
            break
    return out


def segment(pred, volume, mode: str, anisotropy: float, thresholds: dict):
    from napari_unetseg.core.base.thresholds import Thresholds
    from napari_unetseg.core.instances.stacks import link_stack
    from napari_unetseg.core.run.pipeline import segment_image
    from napari_unetseg.core.run.volume import segment_volume

    if mode == "3d":
        return segment_volume(pred, volume, Thresholds.of(thresholds).for_volume().as_dict(),
                              anisotropy=anisotropy)[1]
    labels = segment_image(pred, volume, thresholds, axes="ZYX", diameter="auto")
    return link_stack(labels, "ZYX", stitch=True) if mode == "stitch" else labels


def live_update(pred, shape, thresholds) -> dict:
    """Seconds to redo the 3D watershed from cached maps after a threshold change.

    The maps are the 3d mode's on the bundled 3D sample, tiled to ``shape`` (dense nuclei
    throughout, as in a real stack).
    """
    from napari_unetseg.core.io.images import read_image, read_voxel_size
    from napari_unetseg.core.run.volume import VolumeSegmentation, anisotropy, volume_maps

    path = SAMPLES / "nuclei_3d.tif"
    maps, _, _ = volume_maps(pred, read_image(path), anisotropy=anisotropy(
        read_voxel_size(path)))
    reps = [1] + [-(-n // m) for n, m in zip(shape, maps.shape[1:])]
    maps = np.tile(maps, reps)[(slice(None), *(slice(0, n) for n in shape))].copy()
    seg = VolumeSegmentation(pred.targets, shape[:1])
    seg.add_frame(0, maps)
    t = dict(thresholds)
    t0 = time.perf_counter()
    first = seg.stack_labels(t, shape)
    first_s = time.perf_counter() - t0
    times = {}
    for key, delta in (("seed_threshold", -0.05), ("mask_threshold", 0.05), ("min_size", 10)):
        t[key] = t[key] + delta
        t0 = time.perf_counter()
        seg.stack_labels(t, shape)
        times[key] = round(time.perf_counter() - t0, 2)
    return {"shape": list(shape), "objects": int(first.max()), "first_s": round(first_s, 2),
            "update_s": times}


def seed_sweep(pred, vols, a: float) -> dict:
    """3d-mode AP50 / mAP at each seed threshold (maps predicted once per volume)."""
    from napari_unetseg.core.base.thresholds import Thresholds
    from napari_unetseg.core.instances.metrics import image_scores, summarize
    from napari_unetseg.core.instances.postprocess import SeededWatershed
    from napari_unetseg.core.run.volume import volume_maps

    cached = [(volume_maps(pred, v, anisotropy=a), gt) for v, gt in vols]
    out = {}
    for seed in (0.3, 0.4, 0.5, 0.6, 0.7):
        t = Thresholds.of(pred.thresholds)
        per = [image_scores(gt, SeededWatershed(maps, pred.targets).labels(
            t.mask, seed, t.min_volume(a, scale))) for (maps, scale, _), gt in cached]
        s = summarize(per)
        out[f"{seed:g}"] = [round(s["AP50"], 3), round(s["mAP_50_95"], 3)]
    return out


def main(argv=None):
    from napari_unetseg.core import Predictor
    from napari_unetseg.core.base.synthetic import synthetic_volume
    from napari_unetseg.core.base.thresholds import Thresholds
    from napari_unetseg.core.instances.metrics import image_scores, summarize

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--volumes", type=int, default=8)
    ap.add_argument("--anisotropy", default="2,4")
    ap.add_argument("--modes", default="2d,stitch,3d")
    ap.add_argument("--update-shape", default="64,512,512")
    ap.add_argument("--split", default="val", choices=["val", "train"],
                    help="make the volumes from val.txt images or from training images")
    ap.add_argument("--seed-sweep", action="store_true",
                    help="also score the 3d mode at seed thresholds 0.3-0.7 (to choose "
                         "SEED_OFFSET_3D on training images)")
    args = ap.parse_args(argv)
    pred = Predictor(args.model, "cpu")
    thresholds = dict(pred.thresholds)
    pairs = fluorescence_pairs(args.volumes, pred.normalization, args.split)
    results, shapes = {}, set()
    for a in (float(x) for x in args.anisotropy.split(",")):
        vols = [synthetic_volume(lab, img, anisotropy=a, seed=k)
                for k, (img, lab) in enumerate(pairs)]
        shapes |= {str(v.shape) for v, _ in vols}
        for mode in args.modes.split(","):
            per, t0 = [], time.perf_counter()
            for volume, gt in vols:
                per.append(image_scores(gt, segment(pred, volume, mode, a, thresholds)))
            s = summarize(per)
            results[f"{mode} z-step {a:g}"] = {
                "AP50": round(s["AP50"], 3), "mAP_50_95": round(s["mAP_50_95"], 3),
                "s_per_volume": round((time.perf_counter() - t0) / len(vols), 2)}
            print(f"{mode} z-step {a:g}: {results[f'{mode} z-step {a:g}']}", flush=True,
                  file=sys.stderr)
        if args.seed_sweep:
            results[f"3d z-step {a:g} seed sweep"] = seed_sweep(pred, vols, a)
    volume, _ = vols[0]
    tracemalloc.start()
    segment(pred, volume, "3d", a, thresholds)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    shape = tuple(int(x) for x in args.update_shape.split(","))
    print(json.dumps({
        "model": args.model, "backend": pred.backend, "volumes": len(vols),
        "volume_shapes": sorted(shapes),  # both Z steps
        "split": args.split, "thresholds": thresholds,
        "thresholds_3d": Thresholds.of(thresholds).for_volume().as_dict(), "results": results,
        "bytes_per_voxel_3d": round(peak / volume.size, 1),
        "live_update_3d": live_update(pred, shape, thresholds),
    }, indent=2))


if __name__ == "__main__":
    main()
