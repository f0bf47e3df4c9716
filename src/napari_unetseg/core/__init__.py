"""Pure compute: models, checkpoints, targets, training, inference, post-processing, I/O.

Nothing here imports Qt or napari. torch and timm are imported only when a name that needs
them is first used, so ``import napari_unetseg.core`` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "build_model": "model",
    "DynamicUNet": "model",
    "save_checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "read_checkpoint_info": "checkpoint",
    "CheckpointError": "checkpoint",
    "DEFAULT_MODEL_PATH": "checkpoint",
    "PretrainedWeightsError": "encoders",
    "load_encoder_weights": "encoders",
    "predict": "inference",
    "Predictor": "inference",
    "Cancelled": "inference",
    "available_devices": "inference",
    "watershed_from_maps": "postprocess",
    "segment_image": "pipeline",
    "SeededWatershed": "postprocess",
    "DEFAULT_THRESHOLDS": "postprocess",
    "make_targets": "targets",
    "instance_border": "targets",
    "instance_center_distance": "targets",
    "unet_weight_map": "targets",
    "normalize_plane": "normalize",
    "DEFAULT_NORMALIZATION": "normalize",
    "image_scores": "metrics",
    "summarize": "metrics",
    "read_image": "io",
    "read_labels": "io",
    "write_label_tiff": "io",
    "ImageReadError": "io",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
