"""Watershed update time at 1024x1024: the straightforward scikit-image pipeline vs. the
cached SeededWatershed, in one run. Prints JSON.

Three cases: maps from the bundled model on a 1024x1024 image of the shared DSB2018 set; a
dense one (the fluorescence sample tiled to 1024x1024, about 750 nuclei, the bundled model's
maps); and issue 29's dense map: about 900 touching nuclei (Voronoi cells of random points)
filling the plane as one connected foreground, with borders between them, where every
seed-slider step changes the seeds of the one component. Seed-slider steps (up, then down)
are measured on their own in the dense cases, each checked against the reference.

    python benchmarks/bench_watershed.py
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from napari_unetseg.core.instances.postprocess import SeededWatershed, watershed_reference

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dsb2018_stage1_train"


def make_maps():
    from scipy import ndimage as ndi

    from napari_unetseg.core.io.images import read_image, read_labels

    for lp in sorted((DATA / "labels").glob("*.tif")):
        labels = read_labels(lp)
        if labels.shape == (1024, 1024):
            break
    else:
        sys.exit("no 1024x1024 image in the shared data")
    image = read_image(DATA / "images" / f"{lp.stem}.png")
    try:
        from napari_unetseg.core.inference.predictor import predict
        from napari_unetseg.core.network.checkpoint import DEFAULT_MODEL_PATH

        if DEFAULT_MODEL_PATH.exists():
            return predict("default", image, device="cpu"), f"default model on {lp.stem[:12]}"
    except ImportError:
        pass
    from napari_unetseg.core.training.targets import make_targets

    rng = np.random.default_rng(0)
    t = make_targets(labels, "mask_border")
    maps = [np.clip(ndi.gaussian_filter(c, 1.5) + rng.normal(0, 0.05, c.shape), 0, 1) for c in t]
    return np.stack(maps).astype(np.float32), f"blurred targets of {lp.stem[:12]}"


def slider_sequence(n=40):
    """Thresholds as a user drags: one slider at a time, alternating every 10 steps."""
    seq, mt, st = [], 0.5, 0.6
    for i in range(n):
        if (i // 10) % 2 == 0:
            mt = 0.35 + 0.03 * (i % 10)
        else:
            st = 0.45 + 0.03 * (i % 10)
        seq.append((round(mt, 3), round(st, 3), 8 + 2 * (i % 3)))
    return seq


def dense_maps():
    from napari_unetseg.core.inference.predictor import predict
    from napari_unetseg.core.io.images import read_image

    root = Path(__file__).resolve().parents[1]
    image = read_image(root / "sample_data" / "fluorescence_nuclei.png")
    tiled = np.tile(image, (2, 2) + (1,) * (image.ndim - 2))[:1024, :1024]
    return predict("default", tiled, device="cpu")


def voronoi_maps(n: int = 900, size: int = 1024, seed: int = 0) -> np.ndarray:
    """(mask, border) maps of ``n`` touching nuclei filling the plane: one foreground."""
    from scipy import ndimage as ndi
    from scipy.spatial import cKDTree

    from napari_unetseg.core.training.targets import make_targets

    pts = np.random.default_rng(seed).uniform(0, size, (n, 2))
    yy, xx = np.mgrid[:size, :size]
    _, nearest = cKDTree(pts).query(np.c_[yy.ravel(), xx.ravel()])
    labels = (nearest + 1).reshape(size, size).astype(np.int32)
    return np.stack([np.clip(ndi.gaussian_filter(c, 1.5), 0, 1)
                     for c in make_targets(labels, "mask_border")]).astype(np.float32)


def seed_steps(maps) -> dict:
    """Seed-slider steps alone (the mask threshold fixed), cached vs straightforward."""
    from scipy import ndimage as ndi

    shed = SeededWatershed(maps, "mask_border")
    shed.labels(0.5, 0.5, 8)
    steps = [round(0.5 + 0.01 * k, 2) for k in range(1, 21)]
    steps += steps[-2::-1]  # and back down
    fast, ref = [], []
    for i, st in enumerate(steps):
        t0 = time.perf_counter()
        out = shed.labels(0.5, st, 8)
        fast.append((time.perf_counter() - t0) * 1e3)
        if i % 5 == 0:
            t0 = time.perf_counter()
            ref_out = watershed_reference(maps, "mask_border", 0.5, st, 8)
            ref.append((time.perf_counter() - t0) * 1e3)
            assert np.array_equal(out, ref_out), st
    fg = maps[0] > 0.5
    med_ref, med_fast = statistics.median(ref), statistics.median(fast)
    return {"objects": int(ref_out.max()), "foreground_fraction": round(float(fg.mean()), 3),
            "foreground_components": int(ndi.label(fg)[1]),
            "straightforward_ms_median": round(med_ref, 2),
            "cached_ms_median_seed_step": round(med_fast, 2),
            "cached_ms_max_seed_step": round(max(fast), 2),
            "speedup": round(med_ref / med_fast, 1)}


def main():
    maps, source = make_maps()
    seq = slider_sequence()
    ref_ms = []
    for mt, st, ms in seq[::4]:
        t0 = time.perf_counter()
        ref = watershed_reference(maps, "mask_border", mt, st, ms)
        ref_ms.append((time.perf_counter() - t0) * 1e3)
    shed = SeededWatershed(maps, "mask_border")
    fast_ms, both_ms = [], []
    for mt, st, ms in seq:
        t0 = time.perf_counter()
        out = shed.labels(mt, st, ms)
        fast_ms.append((time.perf_counter() - t0) * 1e3)
    for i in range(10):  # worst case: both thresholds change on every call
        t0 = time.perf_counter()
        shed.labels(0.4 + 0.02 * i, 0.5 + 0.02 * i, 8)
        both_ms.append((time.perf_counter() - t0) * 1e3)
    assert np.array_equal(out, watershed_reference(maps, "mask_border", *seq[-1]))
    med_ref, med_fast = statistics.median(ref_ms), statistics.median(fast_ms)
    print(json.dumps({
        "maps": source,
        "shape": list(maps.shape),
        "objects": int(ref.max()),
        "straightforward_ms_median": round(med_ref, 2),
        "cached_ms_median_slider_drag": round(med_fast, 2),
        "cached_ms_median_both_thresholds_change": round(statistics.median(both_ms), 2),
        "speedup": round(med_ref / med_fast, 1),
        "dense_fluorescence_tiled_1024": seed_steps(dense_maps()),
        "dense_voronoi_900_one_component": seed_steps(voronoi_maps()),
    }, indent=2))


if __name__ == "__main__":
    main()
