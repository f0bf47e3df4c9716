"""What the widgets know about a segmentation: image planes, cached maps, user edits.

No Qt here: these are plain objects shared by the segment, edit and browse panels (a Labels
layer made by the segment panel carries its SegmentationState in its metadata).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STATE_KEY = "unetseg_state"


@dataclass
class ImageView:
    """How an image layer's data splits into 2D planes."""

    data: object
    rgb: bool
    stack_shape: tuple[int, ...]
    plane_shape: tuple[int, int]

    @classmethod
    def of(cls, layer) -> ImageView:
        data = layer.data[0] if layer.multiscale else layer.data
        rgb = bool(layer.rgb)
        n_lead = data.ndim - 2 - int(rgb)
        if n_lead < 0 or n_lead > 2:
            raise ValueError(
                f"layer {layer.name!r} has shape {tuple(data.shape)}; supported are 2D gray or "
                "RGB images and stacks with up to two extra axes (T, Z)"
            )
        return cls(data, rgb, tuple(data.shape[:n_lead]), tuple(data.shape[n_lead : n_lead + 2]))

    @property
    def n_planes(self) -> int:
        return int(np.prod(self.stack_shape)) if self.stack_shape else 1

    @property
    def label_shape(self) -> tuple[int, ...]:
        return (*self.stack_shape, *self.plane_shape)

    @property
    def label_axes(self) -> str:
        return {0: "", 1: "Z", 2: "TZ"}[len(self.stack_shape)] + "YX"

    def plane(self, index: int) -> np.ndarray:
        if not self.stack_shape:
            return np.asarray(self.data)
        return np.asarray(self.data[np.unravel_index(index, self.stack_shape)])


@dataclass
class SegmentationState:
    """What a Labels layer made by this widget remembers (stored in its metadata)."""

    image_name: str
    view_shape: tuple[int, ...]
    stack: object  # core.postprocess.StackSegmentation
    thresholds: dict
    model: str
    # Pixels the user changed by hand (napari paint events), None until the first edit.
    edited: np.ndarray | None = None
    told_about_edits: bool = False

    def mark_edited(self, atoms, shape) -> None:
        """Record the pixels of napari history atoms (masked paint atoms or index tuples)."""
        if self.edited is None or self.edited.shape != tuple(shape):
            self.edited = np.zeros(shape, bool)
        for atom in atoms:
            if hasattr(atom, "slice_key"):
                region = self.edited[atom.slice_key]
                if atom.mask is None:
                    region[...] = True
                else:
                    region[atom.mask] = True
            else:
                self.edited[tuple(atom[0])] = True


def segment_planes(predictor, view: ImageView, planes, thresholds, cancel, tick,
                   diameter=None):
    """Worker: maps and labels for the chosen planes (no Qt, no napari).

    Returns the :class:`StackSegmentation`, the labels, and the nucleus diameter used for
    each plane (None where none applies; see :meth:`Predictor.plane_scale`).
    """
    from napari_unetseg.core.postprocess import StackSegmentation
    from napari_unetseg.core.resample import scaled_shape

    stack = StackSegmentation(predictor.targets, view.stack_shape)
    # One magnification per image: the diameter of the middle chosen plane serves them all.
    scale, d = predictor.plane_scale(view.plane(planes[len(planes) // 2]), diameter,
                                     thresholds=thresholds, cancel=cancel)
    diameters = [d] * len(planes)
    for k, i in enumerate(planes):
        plane = view.plane(i)
        per_plane = predictor.tile_count(scaled_shape(view.plane_shape, scale))
        total = per_plane * len(planes)
        maps = predictor.predict_plane(
            plane, scale=scale,
            progress=lambda done, _t, k=k, p=per_plane, n=total: tick(k * p + done, n),
            cancel=cancel,
        )
        stack.add_plane(i, maps, scale)
    labels = stack.stack_labels(thresholds, view.label_shape)
    return stack, labels, diameters
