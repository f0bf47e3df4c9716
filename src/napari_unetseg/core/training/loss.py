"""The training loss on (mask, border[, centre distance]) or three-class targets."""

from __future__ import annotations

from ..base.modes import target_mode


def segmentation_loss(logits, target, weights, targets: str):
    """BCE + soft Dice for sigmoid targets (no Dice on the soft centre distance);
    (weighted) cross-entropy + soft Dice for ``three_class``.

    The Dice term balances the classes for the batch as a whole; the pixel weights carry only
    the U-Net gap term. (Balancing each crop by its own class frequencies instead gives
    foreground weights of 50 and more in sparse crops.)
    """
    import torch
    import torch.nn.functional as F

    mode = target_mode(targets)
    if mode.activation == "softmax":
        pixel = F.cross_entropy(logits, target.argmax(1), reduction="none")
        p = logits.softmax(1)
    else:
        pixel = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(1)
        p = torch.sigmoid(logits)
    pixel = (pixel * weights).mean() if weights is not None else pixel.mean()
    # Soft targets (the centre distance) get no Dice: BCE alone is minimal at p = target,
    # while Dice would push it towards a binary mask.
    p, target = p[:, : mode.dice_channels], target[:, : mode.dice_channels]
    inter = (p * target).sum((0, 2, 3))
    dice = (2 * inter + 1) / (p.sum((0, 2, 3)) + target.sum((0, 2, 3)) + 1)
    return pixel + (1 - dice).mean()
