"""Pure compute: models, checkpoints, targets, training, inference, post-processing, I/O.

Nothing here imports Qt or napari. torch and timm are imported only when a name that needs
them is first used, so ``import napari_unetseg.core`` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "build_model": "network.model",
    "DynamicUNet": "network.model",
    "save_checkpoint": "network.checkpoint",
    "load_checkpoint": "network.checkpoint",
    "read_checkpoint_info": "network.checkpoint",
    "CheckpointError": "network.checkpoint",
    "DEFAULT_MODEL_PATH": "network.checkpoint",
    "PretrainedWeightsError": "network.encoders",
    "load_encoder_weights": "network.encoders",
    "predict": "inference.predictor",
    "Predictor": "inference.predictor",
    "Cancelled": "inference.predictor",
    "available_devices": "inference.predictor",
    "watershed_from_maps": "instances.postprocess",
    "segment_image": "run.pipeline",
    "segment": "run.segmentation",
    "SegmentationRequest": "run.segmentation",
    "Segmentation": "run.segmentation",
    "SeededWatershed": "instances.postprocess",
    "DEFAULT_THRESHOLDS": "base.thresholds",
    "Thresholds": "base.thresholds",
    "make_targets": "training.targets",
    "instance_border": "base.target_maps",
    "instance_center_distance": "base.target_maps",
    "unet_weight_map": "training.targets",
    "normalize_plane": "base.normalize",
    "DEFAULT_NORMALIZATION": "base.normalize",
    "image_scores": "instances.metrics",
    "summarize": "instances.metrics",
    "read_image": "io.images",
    "read_labels": "io.images",
    "write_label_tiff": "io.images",
    "ImageReadError": "io.images",
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
