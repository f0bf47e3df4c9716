"""Scoring a model on validation images as users run it, and tuning its thresholds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..base.thresholds import Thresholds
from ..instances.metrics import image_scores, summarize
from ..instances.postprocess import SeededWatershed
from .data import load_pair

#: Candidate thresholds searched on the validation maps after training.
THRESHOLD_GRID = {
    "mask_threshold": (0.3, 0.4, 0.5, 0.6, 0.7),
    "seed_threshold": (0.3, 0.4, 0.5, 0.6, 0.7, 0.8),
    "min_size": (0, 4, 8, 16, 32),
}


def predict_maps(
    model, images: list[np.ndarray], device: str = "cpu",
    diameters: list[float | None] | None = None,
) -> tuple[list[np.ndarray], list[float]]:
    """Probability maps of 2D images as inference makes them (the model is put in eval).

    A size-normalized model rescales each image by its diameter (``diameters[i]`` when
    given, else estimated). Returns the maps on each image's own grid and the scale factors
    (watershed sizes at the model's scale divide by their squares).
    """
    from ..inference.predictor import Predictor

    pred = Predictor(model, device)
    maps, scales = [], []
    for i, im in enumerate(images):
        scale, _ = pred.plane_scale(im, diameters[i] if diameters else None)
        maps.append(pred.predict_plane(im, scale=scale))
        scales.append(scale)
    return maps, scales


def score_maps(
    maps: list[np.ndarray], gts: list[np.ndarray], targets: str, thresholds: dict,
    scales: list[float] | None = None,
) -> dict[str, float]:
    """DSB scores of watershed labels from maps against ground truth."""
    scales = scales or [1.0] * len(maps)
    t = Thresholds.of(thresholds)
    per = [image_scores(gt, SeededWatershed(m, targets).labels(*t.at_scale(sc)))
           for m, gt, sc in zip(maps, gts, scales)]
    return summarize(per)


def tune_thresholds(
    maps: list[np.ndarray], gts: list[np.ndarray], targets: str, grid: dict | None = None,
    scales: list[float] | None = None,
) -> tuple[dict, dict]:
    """Pick the post-processing thresholds with the best mAP on the given maps."""
    grid = grid or THRESHOLD_GRID
    scales = scales or [1.0] * len(maps)
    sheds = [SeededWatershed(m, targets) for m in maps]
    best, best_t = None, None
    for mt in grid["mask_threshold"]:
        for st in grid["seed_threshold"]:
            for ms in grid["min_size"]:
                t = {"mask_threshold": mt, "seed_threshold": st, "min_size": ms}
                per = [image_scores(g, s.labels(*Thresholds.of(t).at_scale(sc)))
                       for g, s, sc in zip(gts, sheds, scales)]
                sc = summarize(per)
                if best is None or sc["mAP_50_95"] > best["mAP_50_95"]:
                    best, best_t = sc, t
    return best_t, best


def finalize_thresholds(
    checkpoint: str | Path, val_pairs: list[tuple[Path, Path]], device: str = "auto",
    trust_code: bool = False,
) -> dict[str, Any]:
    """Tune the default thresholds of a trained checkpoint on validation images; rewrite it."""
    from ..network.checkpoint import load_checkpoint, save_checkpoint

    model, info = load_checkpoint(checkpoint, trust_code=trust_code)
    val = [load_pair(ip, lp) for ip, lp in val_pairs]
    maps, scales = predict_maps(model, [v[0] for v in val], device)
    gts = [v[1] for v in val]
    before = score_maps(maps, gts, model.targets, model.thresholds, scales)
    thresholds, scores = tune_thresholds(maps, gts, model.targets, scales=scales)
    prov = dict(info["provenance"])
    if "validation" in prov and "validation_during_training" not in prov:
        # The best epoch's score as training measured it (true diameters, its thresholds).
        prov["validation_during_training"] = prov["validation"]
    prov["validation_before_threshold_tuning"] = before
    prov["validation"] = scores
    prov["thresholds_tuned_on"] = f"{len(val)} validation images"
    save_checkpoint(model, checkpoint, provenance=prov, thresholds=thresholds)
    return {"thresholds": thresholds, "scores": scores, "before": before}


__all__ = ["THRESHOLD_GRID", "finalize_thresholds", "predict_maps", "score_maps",
           "tune_thresholds"]
