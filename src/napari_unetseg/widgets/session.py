"""What the widgets know about a segmentation: image planes, cached maps, user edits.

No Qt here: these are plain objects shared by the segment, edit and browse panels (a Labels
layer made by the segment panel carries its SegmentationState in its metadata).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Planes larger than this are re-thresholded in a worker thread, latest thresholds first,
#: so that dragging a slider does not block the viewer (bench_ui_stall.py measures it).
LIVE_PIXELS = 2 * 2**20


@dataclass
class ImageView:
    """How an image layer's data splits into 2D planes."""

    data: object
    rgb: bool
    stack_shape: tuple[int, ...]
    plane_shape: tuple[int, int]

    @classmethod
    def of(cls, layer, channel_axis: int | None = None, channel: int = 0) -> ImageView:
        """The planes of ``layer``; with ``channel_axis``, those of one ``channel`` along it
        (a multi-channel image segmented on its nuclear channel)."""
        data = layer.data[0] if layer.multiscale else layer.data
        rgb = bool(layer.rgb)
        if channel_axis is not None and not rgb:
            if not 0 <= channel < data.shape[channel_axis]:
                raise ValueError(f"layer {layer.name!r} has {data.shape[channel_axis]} "
                                 f"channels; there is no channel {channel + 1}")
            index = [slice(None)] * data.ndim
            index[channel_axis] = channel
            data = data[tuple(index)]
        n_lead = data.ndim - 2 - int(rgb)
        if not rgb and 3 <= data.ndim <= 4:
            from napari_unetseg.core.inference.predictor import guess_axes

            try:  # (Y, X, 6) is an image with 6 channels, not 64 planes 6 pixels wide
                guess_axes(tuple(data.shape))
            except ValueError as exc:
                raise ValueError(f"layer {layer.name!r}: {exc}") from None
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

    @property
    def axes(self) -> str:
        """The axes of :attr:`data` (RGB channels last)."""
        return self.label_axes + ("C" if self.rgb else "")

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
    # How ids are linked across planes: "2d" (each plane alone) or "stitch" (through Z),
    # and whether they are linked over time.
    stack_mode: str = "2d"
    track: bool = False
    # Pixels the user changed by hand (napari paint events), None until the first edit.
    edited: np.ndarray | None = None
    told_about_edits: bool = False

    def carry_over(self, old: SegmentationState | None, labels: np.ndarray) -> np.ndarray:
        """Take what a previous segmentation of the same layer had: the user's edits and,
        when only some planes of a stack were segmented now, the other planes' maps.
        Returns the labels to show."""
        if old is None:
            return labels
        self.edited, self.told_about_edits = old.edited, old.told_about_edits
        if getattr(self.stack, "volumetric", False) or getattr(old.stack, "volumetric", False):
            return labels  # 3D runs always cover the whole stack
        n_planes = int(np.prod(self.view_shape[:-2]))
        if not self.stack.stack_shape or len(self.stack.sheds) >= n_planes:
            return labels
        for i, m in old.stack.maps.items():
            if i not in self.stack.sheds:
                self.stack.add_plane(i, m, old.stack.scales.get(i, 1.0))
        return self.stack.stack_labels(self.thresholds, self.view_shape)

    def shown_labels(self, labels: np.ndarray, current: np.ndarray | None):
        """What the layer shows for freshly thresholded ``labels``.

        Ids are linked through Z / over time as the run asked, then every object the user
        edited by hand is taken from ``current`` (the layer's data). Returns the labels and
        whether any edited object was kept.
        """
        from napari_unetseg.core.instances.editing import merge_with_locked
        from napari_unetseg.core.instances.stacks import keep_ids

        labels = linked_labels(labels, len(self.view_shape) - 2,
                               self.stack_mode == "stitch", self.track)
        if current is not None and np.shape(current) == labels.shape:
            # Unchanged nuclei keep their ids (and colours): what split or merged stands out.
            labels = keep_ids(labels, np.asarray(current))
        if current is None or self.edited is None or not self.edited.any():
            return labels, False
        return merge_with_locked(labels, np.asarray(current), self.edited), True

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


def plane_at(point, stack_shape: tuple[int, ...]) -> int:
    """Flat index of the plane under a data-space ``point`` (0 for a 2D image)."""
    if not stack_shape:
        return 0
    idx = [int(np.clip(round(p), 0, n - 1)) for p, n in zip(point, stack_shape)]
    return int(np.ravel_multi_index(idx, stack_shape))


def write_plane(data: np.ndarray, i: int, labels: np.ndarray, edited) -> bool:
    """Put one plane's labels into a stack's labels in place, ids above all others.

    The ids stay unique in the stack until a full update renumbers it; pixels the user
    edited (``edited``, the stack's mask, or None) keep their labels. Returns False, writing
    nothing, when the ids would not fit the stack's dtype.
    """
    from napari_unetseg.core.instances.editing import merge_with_locked

    flat = data.reshape(-1, *data.shape[-2:])
    offset = int(flat.max())
    if offset + int(labels.max()) > np.iinfo(flat.dtype).max:
        return False
    new = np.where(labels > 0, labels.astype(flat.dtype) + offset, 0)
    if edited is not None:
        new = merge_with_locked(new, flat[i], edited.reshape(flat.shape)[i]).astype(flat.dtype)
    flat[i] = new
    return True


def linked_labels(labels: np.ndarray, n_lead: int, stitch: bool, track: bool) -> np.ndarray:
    """Stack labels with ids linked through Z (``stitch``) and/or over time (``track``).

    With one extra axis, it is Z when stitching and time when only tracking.
    """
    from napari_unetseg.core.instances.stacks import link_stack

    stitch, track = stitch and n_lead >= 1, track and n_lead >= 1
    if not (stitch or track):
        return labels
    axes = {1: "TYX" if track and not stitch else "ZYX", 2: "TZYX"}[n_lead]
    return link_stack(labels, axes, stitch=stitch, track=track)


def count_objects(labels: np.ndarray) -> int:
    """Distinct non-zero ids (ids may have gaps after edits).

    Counting with bincount rather than np.unique: this runs on the UI thread at every
    slider step.
    """
    return int(np.count_nonzero(np.bincount(labels.ravel())[1:]))


def describe_diameter(diameter: float | None, typed: float | None) -> str:
    """' Nucleus diameter ...' for the status line ('' when the model has none)."""
    if not diameter:
        return "" if typed is None else " No nucleus diameter applies to this model."
    return f" Nucleus diameter {diameter:.1f} px ({'as typed' if typed else 'estimated'})."


class LatestWins:
    """At most one job at a time; while it runs, only the newest request waits.

    The rule for re-thresholding while a slider moves: intermediate values that arrive
    during a computation are skipped, the last one is always computed.
    """

    def __init__(self):
        self.running = False
        self.pending = None

    @property
    def busy(self) -> bool:
        return self.running or self.pending is not None

    def submit(self, request):
        """The request to start now, or None when it has to wait (replacing any waiting)."""
        if self.running:
            self.pending = request
            return None
        self.running = True
        return request

    def finished(self):
        """The current job ended: the waiting request to start next, or None."""
        request, self.pending = self.pending, None
        self.running = request is not None
        return request


def update_plan(state: SegmentationState, dragging: bool) -> str:
    """How to redo the labels after a threshold change.

    ``"background plane"`` / ``"background"``: large planes, in a worker (the plane on
    screen only while a slider is dragged on a stack); ``"plane"``: the plane on screen,
    while dragging on a stack; ``"all"``: everything, on the UI thread.
    """
    if getattr(state.stack, "volumetric", False):  # one 3D watershed: no plane on its own
        return "background" if int(np.prod(state.view_shape)) > LIVE_PIXELS else "all"
    stack = bool(state.stack.stack_shape)
    if int(np.prod(state.view_shape[-2:])) > LIVE_PIXELS:
        return "background plane" if dragging and stack else "background"
    return "plane" if dragging and stack else "all"
