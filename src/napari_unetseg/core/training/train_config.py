"""What defines a training run (:class:`TrainConfig`) and the error of a run that trained
nothing. Plain values only: the command line, the fine-tuning recipe and the training loop
share them without importing the loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..base.target_maps import DEFAULT_BORDER_WIDTH
from ..inference.diameter import DEFAULT_CANONICAL_DIAMETER


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the checkpoint's provenance)."""

    encoder: str = "unet"
    encoder_kwargs: dict[str, Any] = field(default_factory=dict)
    encoder_weights: str | None = None
    pretrained: bool = False
    targets: str = "mask_border"
    upsample: str = "transposed"
    border_width: int = DEFAULT_BORDER_WIDTH
    weighted_loss: bool = False
    balance_styles: bool = False
    crop: int = 256
    batch_size: int = 8
    epochs: int | None = None
    time_budget_min: float | None = None
    lr: float = 2e-3
    weight_decay: float = 1e-4
    device: str = "auto"
    seed: int = 0
    channels_last: bool = True
    compile: bool = False
    init: str | None = None
    #: Fraction of the run, at its end, whose epoch-end weights are averaged into a candidate
    #: model (stochastic weight averaging); 0 turns it off.
    average_last: float = 0.0
    #: Nucleus diameter (px) the model works at; None trains at the images' own sizes.
    #: Fine-tuning and resuming keep the starting checkpoint's.
    canonical_diameter: float | None = DEFAULT_CANONICAL_DIAMETER
    #: Median nucleus diameter (px) of every training image; None measures each image's
    #: from its labels.
    diameter: float | None = None
    #: Random rescaling around the canonical size (or around 1 without one): log-uniform.
    scale_jitter: tuple[float, float] = (0.67, 1.5)
    #: Stain, colour and camera augmentation (:mod:`.augment`).
    colour_augment: bool = True
    #: Processes preparing batches (0: the training process itself).
    workers: int = 0
    #: Crops per epoch (validation runs after each); None: one per training image.
    epoch_images: int | None = None
    #: Keep the encoder's weights and batch-norm statistics as they are and train the
    #: decoder only (fine-tuning on a handful of images).
    freeze_encoder: bool = False
    #: Write ``<out>.resume.pt`` (weights and optimizer) after every epoch, for ``resume``.
    save_resume_state: bool = True


    def check(self) -> None:
        """Refuse settings that cannot train (one-line ValueError naming the setting)."""
        import math

        def positive(name, value, kind=int):
            if value is not None and (not isinstance(value, (int, float)) or isinstance(
                    value, bool) or not math.isfinite(value) or value <= 0
                    or (kind is int and value != int(value))):
                what = "a positive whole number" if kind is int else "a positive number"
                raise ValueError(f"{name} must be {what}, got {value!r}")

        if self.epochs is None and self.time_budget_min is None:
            raise ValueError("give a number of epochs or a time budget")
        for name in ("batch_size", "crop", "epochs", "epoch_images"):
            positive(name.replace("_", "-"), getattr(self, name))
        for name in ("time_budget_min", "lr", "canonical_diameter", "diameter"):
            positive(name.replace("_min", "").replace("_", "-"), getattr(self, name), float)
        if self.workers < 0:
            raise ValueError(f"workers must be 0 or more, got {self.workers}")


class TrainingError(RuntimeError):
    """A run ended without a single training step; nothing was written."""


__all__ = ["TrainConfig", "TrainingError"]
