"""Preparing a model for fast inference on a device."""

from __future__ import annotations


def optimize_for_inference(model, device):
    """Return a callable ``f(x) -> logits`` running ``model`` on ``device`` in eval mode."""
    model.eval().to(device)
    return model
