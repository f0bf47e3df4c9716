"""The main dock widget: model, segment and watershed panels.

Inference and the whole-stack watershed run in napari worker threads; slider movements
recompute only the visible plane from cached maps, on the UI thread, in milliseconds.
"""

from __future__ import annotations

import threading
import time
import weakref

import numpy as np
from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider, QLabeledSlider

from napari_unetseg.core.modes import TARGET_MODES

from .common import (
    compact_combo,
    first_line,
    preload_labels_display,
    refresh_layer_combo,
    start_worker,
)
from .model_panel import ModelPanel
from .session import STATE_KEY, ImageView, SegmentationState, segment_planes

SCOPES = ("Current plane", "Whole stack")
#: Planes larger than this are re-thresholded in a worker thread, latest thresholds first,
#: so that dragging a slider does not block the viewer (2048^2 took 0.2 s on the UI thread).
LIVE_PIXELS = 2 * 2**20


def describe_diameters(diameters: list, typed: float | None) -> str:
    """' Nucleus diameter ...' for the status line ('' when the model has none)."""
    found = [d for d in diameters if d]
    if not found:
        return "" if typed is None else " No nucleus diameter applies to this model."
    how = "as typed" if typed is not None else "estimated"
    if len(found) == 1:
        return f" Nucleus diameter {found[0]:.1f} px ({how})."
    return (f" Nucleus diameter {min(found):.1f}-{max(found):.1f} px over {len(found)} "
            f"planes ({how}).")


class _Relay(QObject):
    """Carries progress from a worker thread to the UI thread (queued signal)."""

    tick = Signal(int, int)


DIAMETER_TIP = (
    "Typical nucleus diameter in pixels. 'auto' estimates it for each image or plane; the "
    "image is rescaled so that its nuclei have the size the model was trained at, and the "
    "labels come back on the image's own pixels. Type a value when the estimate is off."
)


class SegmentWidget(QWidget):
    """Segment the chosen image layer with a U-Net and tune the watershed live."""

    # The segment widget of each viewer, so that other panels (the folder browser) can
    # ask it to segment with the model and thresholds the user chose.
    _by_viewer: weakref.WeakValueDictionary = weakref.WeakValueDictionary()

    @classmethod
    def instance_for(cls, viewer) -> SegmentWidget | None:
        return cls._by_viewer.get(id(viewer))

    def __init__(self, napari_viewer, autoload: bool = True):
        super().__init__()
        self.viewer = napari_viewer
        SegmentWidget._by_viewer[id(napari_viewer)] = self
        self._worker = None
        self._cancel = threading.Event()
        self._relay = _Relay()
        self._relay.tick.connect(self._on_tick)
        self._pbar = None
        self.labels_layer = None
        self._shed_worker = None
        self._pending = None

        self.model_panel = ModelPanel(self, autoload=autoload)
        self.model_panel.model_loaded.connect(self._on_model_loaded)

        # Segment panel
        seg = QGroupBox("Segment")
        self.layer_combo = compact_combo(QComboBox())
        self.layer_combo.setToolTip("Image layer to segment")
        self.scope_combo = QComboBox()
        self.scope_combo.addItems(SCOPES)
        self.scope_combo.setToolTip("For stacks: the plane on screen, or every plane")
        self.stitch_check = QCheckBox("One id per nucleus through Z (stitch)")
        self.stitch_check.setToolTip("Link each plane's objects with the overlapping objects "
                                     "of the plane above (IoU 0.25 or more)")
        self.track_check = QCheckBox("Link ids over time")
        self.track_check.setToolTip("Each object keeps the id of the object it overlaps most "
                                    "in the previous frame")
        self.diameter_box = QDoubleSpinBox()
        self.diameter_box.setRange(0.0, 1000.0)
        self.diameter_box.setDecimals(1)
        self.diameter_box.setSuffix(" px")
        # 0 shows as "auto": Qt's own way to offer a special value in a number box.
        self.diameter_box.setSpecialValueText("auto")
        self.diameter_box.setToolTip(DIAMETER_TIP)
        self.maps_check = QCheckBox("Also show probability maps")
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Segment the chosen image with the loaded model")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        form = QFormLayout(seg)
        form.addRow("Image:", self.layer_combo)
        form.addRow("Planes:", self.scope_combo)
        form.addRow(self.stitch_check)
        form.addRow(self.track_check)
        self.diameter_label = QLabel("")
        self.diameter_label.setToolTip("The diameter the last run used")
        drow = QHBoxLayout()
        drow.addWidget(self.diameter_box)
        drow.addWidget(self.diameter_label)
        form.addRow("Nucleus diameter:", drow)
        form.addRow(self.maps_check)
        form.addRow(buttons)
        form.addRow(self.status_label)

        # Watershed panel
        shed = QGroupBox("Watershed")
        self.mask_slider = self._slider(0.05, 0.95, "Foreground: mask probability above this")
        self.seed_slider = self._slider(0.05, 0.95,
                                        TARGET_MODES["mask_border"].seed_description)
        self.size_slider = QLabeledSlider(Qt.Orientation.Horizontal)
        self.size_slider.setRange(0, 500)
        self.size_slider.setToolTip("Objects smaller than this many pixels are removed")
        self.reset_button = QPushButton("Reset to model defaults")
        self.count_label = QLabel("No segmentation yet")
        sform = QFormLayout(shed)
        sform.addRow("Mask threshold:", self.mask_slider)
        sform.addRow("Seed threshold:", self.seed_slider)
        sform.addRow("Min size (px):", self.size_slider)
        sform.addRow(self.reset_button)
        sform.addRow(self.count_label)

        layout = QVBoxLayout(self)
        layout.addWidget(self.model_panel)
        layout.addWidget(seg)
        layout.addWidget(shed)
        layout.addStretch(1)

        # No values before the model says its own: the sliders wait, disabled, so that they
        # never show one set of values and then jump to another.
        self.shed_group = shed
        shed.setEnabled(False)
        self.count_label.setText("Waiting for the model…")
        for s in (self.mask_slider, self.seed_slider, self.size_slider):
            s.valueChanged.connect(self._on_threshold_moved)
            s.sliderReleased.connect(self._on_threshold_released)
        self.reset_button.clicked.connect(self._reset_thresholds)
        self.run_button.clicked.connect(self.run)
        self.layer_combo.currentTextChanged.connect(lambda _: self._update_scope())
        self.cancel_button.clicked.connect(self.cancel)
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self.viewer.layers.events.moved.connect(self._refresh_layers)
        self._refresh_layers()

    # ------------------------------------------------------------------ building
    @staticmethod
    def _slider(lo: float, hi: float, tip: str) -> QLabeledDoubleSlider:
        s = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        s.setRange(lo, hi)
        s.setSingleStep(0.01)
        s.setDecimals(2)
        s.setToolTip(tip)
        return s

    def _refresh_layers(self, event=None) -> None:
        from napari.layers import Image

        refresh_layer_combo(self.layer_combo, self.viewer, Image, event)
        self._update_scope()
        if self.labels_layer is not None and self.labels_layer not in self.viewer.layers:
            self.labels_layer = None
        for layer in self.viewer.layers:
            if isinstance(layer, Image):
                layer.events.name.disconnect(self._refresh_layers)
                layer.events.name.connect(self._refresh_layers)

    def _update_scope(self) -> None:
        """'Planes' only means something for stacks."""
        name = self.layer_combo.currentText()
        stack = False
        if name in self.viewer.layers:
            try:
                stack = bool(ImageView.of(self.viewer.layers[name]).stack_shape)
            except ValueError:
                stack = False
        self.scope_combo.setEnabled(stack)
        self.stitch_check.setVisible(stack)
        self.track_check.setVisible(stack)
        self.scope_combo.setToolTip("For stacks: the plane on screen, or every plane"
                                    if stack else "The chosen image is a single plane")

    # ------------------------------------------------------------------ thresholds
    def thresholds(self) -> dict:
        return {
            "mask_threshold": round(float(self.mask_slider.value()), 3),
            "seed_threshold": round(float(self.seed_slider.value()), 3),
            "min_size": int(self.size_slider.value()),
        }

    def _set_sliders(self, t: dict) -> None:
        for s, key in ((self.mask_slider, "mask_threshold"), (self.seed_slider, "seed_threshold"),
                       (self.size_slider, "min_size")):
            s.blockSignals(True)
            s.setValue(t[key])
            s.blockSignals(False)

    def diameter(self) -> float | None:
        """The nucleus diameter typed in (px), or None for automatic."""
        value = float(self.diameter_box.value())
        return value if value > 0 else None

    def _on_model_loaded(self, predictor) -> None:
        self.seed_slider.setToolTip(TARGET_MODES[predictor.targets].seed_description)
        if not self.shed_group.isEnabled():
            self.shed_group.setEnabled(True)
            self.count_label.setText("No segmentation yet")
        sized = bool(predictor.diameter)
        self.diameter_box.setEnabled(sized)
        self.diameter_box.setToolTip(DIAMETER_TIP if sized else
                                     "This model works at the image's own size (no diameter)")
        if self.labels_layer is None:
            self._set_sliders(predictor.thresholds)

    def _reset_thresholds(self) -> None:
        if self.model_panel.predictor is not None:
            self._set_sliders(self.model_panel.predictor.thresholds)
            self._on_threshold_released()

    def _state(self) -> SegmentationState | None:
        layer = self.labels_layer
        if layer is None or layer not in self.viewer.layers:
            return None
        return layer.metadata.get(STATE_KEY)

    def _current_plane(self, layer) -> int:
        state = layer.metadata[STATE_KEY]
        stack_shape = state.stack.stack_shape
        if not stack_shape:
            return 0
        point = layer.world_to_data(self.viewer.dims.point)
        idx = [int(np.clip(round(p), 0, n - 1)) for p, n in zip(point, stack_shape)]
        return int(np.ravel_multi_index(idx, stack_shape))

    def _on_threshold_moved(self, _value=None) -> None:
        state = self._state()
        if state is None:
            return
        dragging = any(s.isSliderDown() for s in (self.mask_slider, self.seed_slider,
                                                  self.size_slider))
        if int(np.prod(state.view_shape[-2:])) > LIVE_PIXELS:
            self._update_in_background(state, plane_only=dragging)
        elif dragging and state.stack.stack_shape:
            self._update_plane(state)
        else:
            self._update_all(state)

    def _on_threshold_released(self) -> None:
        state = self._state()
        if state is None:
            return
        if int(np.prod(state.view_shape[-2:])) > LIVE_PIXELS:
            self._update_in_background(state, plane_only=False)
        else:
            self._update_all(state)

    def _update_in_background(self, state: SegmentationState, plane_only: bool) -> None:
        """Re-threshold in a worker; while one runs, only the latest request is kept."""
        self._pending = (state, plane_only and bool(state.stack.stack_shape),
                         self.thresholds())
        if self._shed_worker is not None:
            return
        state, plane_only, t = self._pending
        self._pending = None
        i = self._current_plane(self.labels_layer) if plane_only else None
        if plane_only and i not in state.stack.sheds:
            return

        def work():
            if plane_only:
                return state.stack.plane_labels(i, t)
            return state.stack.stack_labels(t, state.view_shape)

        self.count_label.setText("Updating…")
        self._shed_worker = start_worker(
            self, work, returned=lambda lab: self._apply_background(state, t, i, lab),
            finished=self._on_shed_finished)

    def _apply_background(self, state, t, plane, labels) -> None:
        if self.labels_layer is None or self.labels_layer.metadata.get(STATE_KEY) is not state:
            return  # the layer changed meanwhile: the result is stale
        if plane is None:
            state.thresholds = t
            self._show_labels(labels)
        else:
            self._write_plane(state, plane, labels)

    def _on_shed_finished(self) -> None:
        self._shed_worker = None
        if self._pending is not None:
            state, plane_only, _ = self._pending
            self._update_in_background(state, plane_only)

    @property
    def updating(self) -> bool:
        """A background re-threshold is running or queued."""
        return self._shed_worker is not None or self._pending is not None

    def _update_plane(self, state: SegmentationState) -> None:
        """While dragging on a stack: recompute the plane on screen only."""
        i = self._current_plane(self.labels_layer)
        if i in state.stack.sheds:
            self._write_plane(state, i, state.stack.plane_labels(i, self.thresholds()))

    def _write_plane(self, state: SegmentationState, i: int, lab: np.ndarray) -> None:
        from napari_unetseg.core.editing import merge_with_locked

        layer = self.labels_layer
        flat = layer.data.reshape(-1, *layer.data.shape[-2:])
        # Ids above everything in the stack stay unique until the release renumbers all.
        offset = int(flat.max())
        if offset + int(lab.max()) > np.iinfo(flat.dtype).max:
            return  # ids would overflow the layer's dtype; the release recomputes everything
        new = np.where(lab > 0, lab.astype(flat.dtype) + offset, 0)
        if state.edited is not None:
            edited = state.edited.reshape(flat.shape)[i]
            new = merge_with_locked(new, flat[i], edited).astype(flat.dtype)
        flat[i] = new
        layer.refresh()
        self.count_label.setText(f"{int(lab.max())} objects in this plane (updating…)")

    def _update_all(self, state: SegmentationState) -> None:
        t = self.thresholds()
        labels = state.stack.stack_labels(t, state.view_shape)
        state.thresholds = t
        self._show_labels(labels)

    def _show_labels(self, labels: np.ndarray) -> None:
        """Put recomputed labels in the layer, keeping every object the user edited."""
        from napari.utils.notifications import show_info

        from napari_unetseg.core.editing import merge_with_locked

        layer = self.labels_layer
        state = layer.metadata[STATE_KEY]
        labels = self._linked(labels, len(state.view_shape) - 2)
        if state.edited is not None and state.edited.any():
            labels = merge_with_locked(labels, np.asarray(layer.data), state.edited)
            if not state.told_about_edits:
                state.told_about_edits = True
                show_info("Objects you edited by hand are kept; only the rest is recomputed")
        if layer.data is not labels:
            layer.data = labels
        # Ids may have gaps after edits; counting them with bincount is ~20x faster than
        # np.unique on large images (this runs on the UI thread at every slider step).
        n = int(np.count_nonzero(np.bincount(labels.ravel())[1:]))
        where = "" if not state.stack.stack_shape else f" in {len(state.stack.sheds)} plane(s)"
        self.count_label.setText(f"{n} objects{where}")

    def _linked(self, labels: np.ndarray, n_lead: int) -> np.ndarray:
        """Stack labels with ids linked through Z and/or time, as the checkboxes say."""
        from napari_unetseg.core.stacks import link_stack

        stitch = self.stitch_check.isChecked() and n_lead >= 1
        track = self.track_check.isChecked() and n_lead >= 1
        if not (stitch or track):
            return labels
        # One extra axis is Z when stitching, time when only tracking.
        axes = {1: "TYX" if track and not stitch else "ZYX", 2: "TZYX"}[n_lead]
        return link_stack(labels, axes, stitch=stitch, track=track)

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        """Segment the chosen image layer in a worker thread."""
        from napari.utils import progress
        from napari.utils.notifications import show_error

        if self._worker is not None:
            return
        name = self.layer_combo.currentText()
        if not name or name not in self.viewer.layers:
            show_error("Choose an image layer to segment (open an image first)")
            return
        predictor = self.model_panel.predictor
        if predictor is None:
            show_error("No model is loaded yet; wait for it or choose a checkpoint")
            return
        layer = self.viewer.layers[name]
        try:
            view = ImageView.of(layer)
        except ValueError as exc:
            show_error(str(exc))
            return
        if self.scope_combo.currentText() == SCOPES[0] and view.stack_shape:
            point = layer.world_to_data(self.viewer.dims.point)
            idx = [int(np.clip(round(p), 0, n - 1)) for p, n in zip(point, view.stack_shape)]
            planes = [int(np.ravel_multi_index(idx, view.stack_shape))]
        else:
            planes = list(range(view.n_planes))
        self._cancel.clear()
        self._started = time.perf_counter()
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status_label.setText(f"Segmenting {name} on {predictor.device}…")
        self._pbar = progress(total=1, desc=f"Segmenting {name}")
        def work():
            preload_labels_display()
            return segment_planes(predictor, view, planes, thresholds, self._cancel.is_set,
                                  self._relay.tick.emit, diameter)

        thresholds = self.thresholds()
        diameter = self.diameter()
        self._worker = start_worker(
            self, work, returned=lambda r: self._on_done(layer, view, predictor, r),
            errored=self._on_error, finished=self._on_finished)

    def run_when_ready(self) -> None:
        """Run now, or as soon as the model has loaded."""
        if self.model_panel.predictor is not None:
            self.run()
            return

        def once(_predictor):
            self.model_panel.model_loaded.disconnect(once)
            self.run()

        self.model_panel.model_loaded.connect(once)

    def cancel(self) -> None:
        """Stop the running segmentation between tiles; nothing is changed."""
        self._cancel.set()
        self.status_label.setText("Cancelling…")

    def _on_tick(self, done: int, total: int) -> None:
        if self._pbar is not None:
            self._pbar.total = total
            self._pbar.update(done - self._pbar.n)
        self.status_label.setText(f"Segmenting… tile {done}/{total}")

    def _on_done(self, image_layer, view: ImageView, predictor, result) -> None:
        if image_layer not in self.viewer.layers:
            # The image was closed meanwhile (the browser moved on): drop the result rather
            # than add labels for an image that is gone.
            self.status_label.setText("The image was closed before its result arrived.")
            return
        stack, labels, diameters = result
        name = f"{image_layer.name} labels"
        state = SegmentationState(
            image_name=image_layer.name,
            view_shape=view.label_shape,
            stack=stack,
            thresholds=self.thresholds(),
            model=self.model_panel.current or "default",
        )
        metadata = {
            STATE_KEY: state,
            "unetseg_axes": view.label_axes,
            "unetseg_provenance": {"model": state.model, "thresholds": state.thresholds,
                                   "source": image_layer.name},
        }
        existing = self.viewer.layers[name] if name in self.viewer.layers else None
        if existing is not None and existing.data.shape == labels.shape:
            old = existing.metadata.get(STATE_KEY)
            if old is not None:
                state.edited, state.told_about_edits = old.edited, old.told_about_edits
            if old is not None and old.stack.stack_shape and len(stack.sheds) < view.n_planes:
                # Segmenting one plane of a stack keeps the other planes already done.
                for i, m in old.stack.maps.items():
                    if i not in stack.sheds:
                        stack.add_plane(i, m, old.stack.scales.get(i, 1.0))
                labels = stack.stack_labels(state.thresholds, view.label_shape)
            existing.metadata.update(metadata)
            self.labels_layer = existing
            self._show_labels(labels)
        else:
            self.labels_layer = self.viewer.add_labels(
                labels, name=name, metadata=metadata, scale=image_layer.scale[-len(
                    view.label_shape):], translate=image_layer.translate[-len(view.label_shape):],
            )
            self._show_labels(labels)
            self.labels_layer.events.paint.connect(self._on_paint)
        if self.maps_check.isChecked():
            self._show_maps(image_layer, view, stack, predictor.targets)
        seconds = time.perf_counter() - self._started
        said = describe_diameters(diameters, self.diameter())
        self.status_label.setText(f"Done in {seconds:.1f} s on {predictor.device}." + said)
        found = [d for d in diameters if d]
        self.diameter_label.setText(
            "" if not found else f"used {np.median(found):.1f} px"
            + (" (median)" if len(found) > 1 else ""))

    def _on_paint(self, event) -> None:
        layer = event.source
        state = layer.metadata.get(STATE_KEY)
        if state is not None:
            state.mark_edited(event.value, layer.data.shape)

    def _show_maps(self, image_layer, view, stack, targets: str) -> None:
        names = TARGET_MODES[targets].map_names
        for c, cname in enumerate(names):
            arr = np.zeros((view.n_planes, *view.plane_shape), np.float32)
            for i, m in stack.maps.items():
                arr[i] = m[c]
            arr = arr.reshape(view.label_shape)
            lname = f"{image_layer.name} {cname}"
            if lname in self.viewer.layers:
                self.viewer.layers[lname].data = arr
            else:
                self.viewer.add_image(arr, name=lname, colormap="magma", blending="additive",
                                      contrast_limits=(0, 1), visible=False)

    def _on_error(self, exc: Exception) -> None:
        from napari.utils.notifications import show_error, show_info

        from napari_unetseg.core.inference import Cancelled

        if isinstance(exc, Cancelled):
            show_info("Segmentation cancelled; nothing was changed")
            self.status_label.setText("Cancelled.")
        else:
            msg = first_line(exc)
            show_error(f"Segmentation failed: {msg}")
            self.status_label.setText(f"Failed: {msg}")

    def _on_finished(self) -> None:
        self._worker = None
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    @property
    def busy(self) -> bool:
        return self._worker is not None
