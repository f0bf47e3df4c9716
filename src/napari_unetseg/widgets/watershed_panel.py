"""The Watershed group of the segment panel: threshold sliders that redo the labels live.

Slider movements recompute labels from the cached maps of the last run (never the network):
small images on the UI thread in milliseconds, large ones in a worker where only the latest
request is computed (the rules are in :mod:`.session`).
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFormLayout, QGroupBox, QLabel, QPushButton
from superqt import QLabeledDoubleSlider, QLabeledSlider

from napari_unetseg.core.base.modes import TARGET_MODES

from .common import start_worker
from .layer_keys import STATE_KEY
from .session import (
    LatestWins,
    SegmentationState,
    count_objects,
    plane_at,
    update_plan,
    write_plane,
)


def _probability_slider(tip: str) -> QLabeledDoubleSlider:
    s = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
    s.setRange(0.05, 0.95)
    s.setSingleStep(0.01)
    s.setDecimals(2)
    s.setToolTip(tip)
    return s


class WatershedPanel(QGroupBox):
    """Mask, seed and size thresholds of ``labels_layer``'s segmentation, applied live."""

    def __init__(self, viewer):
        super().__init__("Watershed")
        self.viewer = viewer
        self.labels_layer = None  # the layer of the last run; set by the segment panel
        self._updates = LatestWins()
        self.mask_slider = _probability_slider("Foreground: mask probability above this")
        self.seed_slider = _probability_slider(TARGET_MODES["mask_border"].seed_description)
        self.size_slider = QLabeledSlider(Qt.Orientation.Horizontal)
        self.size_slider.setRange(0, 500)
        self.size_slider.setToolTip("Objects smaller than this many pixels are removed")
        self.reset_button = QPushButton("Reset to model defaults")
        self.count_label = QLabel("Waiting for the model…")
        form = QFormLayout(self)
        form.addRow("Mask threshold:", self.mask_slider)
        form.addRow("Seed threshold:", self.seed_slider)
        form.addRow("Min size (px):", self.size_slider)
        form.addRow(self.reset_button)
        form.addRow(self.count_label)
        self._defaults: dict | None = None
        # No values before the model says its own: the sliders wait, disabled, so that they
        # never show one set of values and then jump to another.
        self.setEnabled(False)
        for s in self._sliders:
            s.valueChanged.connect(self._on_moved)
            s.sliderReleased.connect(self._on_released)
        self.reset_button.clicked.connect(self.reset)

    @property
    def _sliders(self):
        return self.mask_slider, self.seed_slider, self.size_slider

    def thresholds(self) -> dict:
        """The thresholds on the sliders."""
        return {
            "mask_threshold": round(float(self.mask_slider.value()), 3),
            "seed_threshold": round(float(self.seed_slider.value()), 3),
            "min_size": int(self.size_slider.value()),
        }

    def set_thresholds(self, t: dict) -> None:
        """Move the sliders without recomputing anything."""
        for s, key in zip(self._sliders, ("mask_threshold", "seed_threshold", "min_size")):
            s.blockSignals(True)
            s.setValue(t[key])
            s.blockSignals(False)

    def model_loaded(self, predictor) -> None:
        """Take a newly loaded model's seed meaning and defaults (unless a result is shown)."""
        self._defaults = dict(predictor.thresholds)
        self.seed_slider.setToolTip(TARGET_MODES[predictor.targets].seed_description)
        if not self.isEnabled():
            self.setEnabled(True)
            self.count_label.setText("No segmentation yet")
        if self.labels_layer is None:
            self.set_thresholds(self._defaults)

    def defaults(self, volumetric: bool = False) -> dict | None:
        """The model's thresholds, or the 3d mode's (a lower seed threshold)."""
        from napari_unetseg.core.base.thresholds import Thresholds

        if self._defaults is None:
            return None
        if volumetric:
            return Thresholds.of(self._defaults).for_volume().as_dict()
        return dict(self._defaults)

    def follow_mode(self, volumetric: bool) -> None:
        """Before a run: sliders still at one mode's defaults move to the run's mode's."""
        if self.defaults() is None:
            return
        if self.thresholds() in (self.defaults(False), self.defaults(True)):
            self.set_thresholds(self.defaults(volumetric))

    def reset(self) -> None:
        """Back to the model's own thresholds (3d: its 3D ones), and redo the labels."""
        state = self.state()
        defaults = self.defaults(bool(state and getattr(state.stack, "volumetric", False)))
        if defaults is not None:
            self.set_thresholds(defaults)
            self._on_released()

    @property
    def updating(self) -> bool:
        """A background re-threshold is running or queued."""
        return self._updates.busy

    def state(self) -> SegmentationState | None:
        layer = self.labels_layer
        if layer is None or layer not in self.viewer.layers:
            return None
        return layer.metadata.get(STATE_KEY)

    def show_labels(self, labels: np.ndarray) -> None:
        """Put recomputed labels in the layer, keeping every object the user edited."""
        from napari.utils.notifications import show_info

        layer = self.labels_layer
        state = layer.metadata[STATE_KEY]
        labels, kept_edits = state.shown_labels(labels, layer.data)
        if kept_edits and not state.told_about_edits:
            state.told_about_edits = True
            show_info("Objects you edited by hand are kept; only the rest is recomputed")
        if layer.data is not labels:
            layer.data = labels
        if getattr(state.stack, "volumetric", False):
            where = " (3D)"
        elif state.stack.stack_shape:
            where = f" in {len(state.stack.sheds)} plane(s)"
        else:
            where = ""
        self.count_label.setText(f"{count_objects(labels)} objects{where}")

    def recount(self) -> None:
        """Count the objects of the layer again (after a hand edit, a merge, a split)."""
        state, layer = self.state(), self.labels_layer
        if state is None:
            return
        where = ("" if not state.stack.stack_shape or getattr(state.stack, "volumetric", False)
                 else f" in {len(state.stack.sheds)} plane(s)")
        self.count_label.setText(f"{count_objects(np.asarray(layer.data))} objects{where}"
                                 + (" (3D)" if getattr(state.stack, "volumetric", False)
                                    else ""))

    # ------------------------------------------------------------------ live updates
    def _current_plane(self) -> int:
        layer = self.labels_layer
        return plane_at(layer.world_to_data(self.viewer.dims.point),
                        layer.metadata[STATE_KEY].stack.stack_shape)

    def _on_moved(self, _value=None, released: bool = False) -> None:
        state = self.state()
        if state is None:
            return
        dragging = not released and any(s.isSliderDown() for s in self._sliders)
        how = update_plan(state, dragging)
        if how.startswith("background"):
            plane_only = how == "background plane" and bool(state.stack.stack_shape)
            request = self._updates.submit((state, plane_only))
            if request is not None:
                self._start_update(*request)
        elif how == "plane":  # dragging on a stack: the plane on screen only
            i = self._current_plane()
            if i in state.stack.sheds:
                self._write_plane(state, i, state.stack.plane_labels(i, self.thresholds()))
        else:
            t = self.thresholds()
            labels = state.stack.stack_labels(t, state.view_shape)
            state.thresholds = t
            self.show_labels(labels)

    def _on_released(self) -> None:
        self._on_moved(released=True)

    def _start_update(self, state: SegmentationState, plane_only: bool) -> None:
        t = self.thresholds()
        i = self._current_plane() if plane_only else None
        if plane_only and i not in state.stack.sheds:
            self._on_update_finished()
            return

        def work():
            if plane_only:
                return state.stack.plane_labels(i, t)
            return state.stack.stack_labels(t, state.view_shape)

        self.count_label.setText("Updating…")
        start_worker(self, work, returned=lambda lab: self._apply_update(state, t, i, lab),
                     finished=self._on_update_finished)

    def _apply_update(self, state, t, plane, labels) -> None:
        if self.labels_layer is None or self.labels_layer.metadata.get(STATE_KEY) is not state:
            return  # the layer changed meanwhile: the result is stale
        if plane is None:
            state.thresholds = t
            self.show_labels(labels)
        else:
            self._write_plane(state, plane, labels)

    def _on_update_finished(self) -> None:
        request = self._updates.finished()
        if request is not None:
            self._start_update(*request)

    def _write_plane(self, state: SegmentationState, i: int, lab: np.ndarray) -> None:
        layer = self.labels_layer
        if not write_plane(layer.data, i, lab, state.edited):
            return  # ids would overflow the layer's dtype; the release recomputes everything
        layer.refresh()
        self.count_label.setText(f"{int(lab.max())} objects in this plane (updating…)")
