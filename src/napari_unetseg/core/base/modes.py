"""What a network predicts: the registry of target modes.

Every place that depends on the target mode (model head, targets, loss, post-processing,
widgets, command line) asks :data:`TARGET_MODES` instead of branching on the mode's name.
No heavy imports here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import target_maps

Split = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class TargetMode:
    """One kind of network output and how instances are made from it.

    Attributes
    ----------
    name : str
    channels : int
        Output channels of the network.
    activation : {"sigmoid", "softmax"}
    map_names : tuple of str
        One name per channel, as shown to users.
    seed_description : str
        What the seed threshold applies to (the slider's tooltip).
    split : callable
        ``maps (C, Y, X) -> (foreground probability, seed map)``.
    relative_seeds : bool
        Seeds are taken relative to the peak of each foreground component.
    dice_channels : int
        Leading channels with a soft Dice term in the loss (soft targets have none).
    background_channel : int or None
        The channel that is 1 where nothing is (softmax modes), else None.
    trainable : bool
        Offered by ``unetseg train``.
    split_in_place : callable or None
        Like ``split``, but free to reuse the float32 maps' memory for the seed map (saves
        4 bytes per pixel on large planes when the caller no longer needs the maps).
    targets : callable
        ``targets(labels, border_width) -> (C, Y, X)`` maps the network learns
        (:mod:`.target_maps`).
    """

    name: str
    channels: int
    activation: str
    map_names: tuple[str, ...]
    seed_description: str
    split: Split
    relative_seeds: bool = False
    dice_channels: int = 0
    background_channel: int | None = None
    trainable: bool = True
    split_in_place: Split | None = None
    targets: Callable[[np.ndarray, int], np.ndarray] = target_maps.mask_maps

    def empty_maps(self, out: np.ndarray) -> np.ndarray:
        """Fill (C, Y, X) maps with "nothing here" (what a blank plane gives)."""
        out[...] = 0
        if self.background_channel is not None:
            out[self.background_channel] = 1
        return out


TARGET_MODES: dict[str, TargetMode] = {
    m.name: m
    for m in (
        TargetMode(
            "mask_border", 2, "sigmoid", ("mask probability", "border probability"),
            "Seeds (one per nucleus): mask - border above this",
            lambda m: (m[0], m[0] - m[1]), dice_channels=2,
            split_in_place=lambda m: (m[0], np.subtract(m[0], m[1], out=m[1])),
            targets=target_maps.mask_border_maps,
        ),
        TargetMode(
            "three_class", 3, "softmax",
            ("interior probability", "border probability", "background probability"),
            "Seeds (one per nucleus): interior probability above this",
            lambda m: (1.0 - m[2], m[0]), dice_channels=3, background_channel=2,
            targets=target_maps.three_class_maps,
        ),
        TargetMode(
            # Seeds are nuclei centres and the watershed floods down the distance; the
            # distance is a soft target, so Dice (which pushes towards 0/1) leaves it out.
            "mask_border_distance", 3, "sigmoid",
            ("mask probability", "border probability", "centre distance"),
            "Seeds (one per nucleus): centre distance above this fraction of the peak of "
            "its blob",
            lambda m: (m[0], m[2]), relative_seeds=True, dice_channels=2,
            targets=target_maps.mask_border_distance_maps,
        ),
        TargetMode(
            "binary", 1, "sigmoid", ("mask probability",), "Seeds: mask above this",
            lambda m: (m[0], m[0]), dice_channels=1, trainable=False,
        ),
    )
}


def target_mode(name: str) -> TargetMode:
    """The registered mode called ``name``; a one-line ValueError otherwise."""
    try:
        return TARGET_MODES[name]
    except (KeyError, TypeError):
        raise ValueError(f"targets must be one of {sorted(TARGET_MODES)}, got {name!r}") from None


__all__ = ["TARGET_MODES", "TargetMode", "target_mode"]
