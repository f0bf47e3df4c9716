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
    auto_number_box,
    compact_combo,
    first_line,
    preload_labels_display,
    refresh_layer_combo,
    start_worker,
)
from .model_panel import ModelPanel
from .session import (
    STATE_KEY,
    ImageView,
    LatestWins,
    SegmentationState,
    count_objects,
    describe_diameter,
    linked_labels,
    plane_at,
    segment_planes,
    update_plan,
    write_plane,
)

SCOPES = ("Current plane", "Whole stack")


class _Relay(QObject):
    """Carries progress from a worker thread to the UI thread (queued signal)."""

    tick = Signal(int, int)


DIAMETER_TIP = (
    "Typical nucleus diameter in pixels. 'auto' estimates it for each image (a stack: on "
    "its middle plane); the image is rescaled so that its nuclei have the size the model "
    "was trained at, and the labels come back on the image's own pixels. Type a value when "
    "the estimate is off."
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
        self._updates = LatestWins()

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
        self.diameter_box = auto_number_box(1000.0, " px", DIAMETER_TIP)
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
        self.count_label = QLabel("Waiting for the model…")
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
        return plane_at(layer.world_to_data(self.viewer.dims.point),
                        layer.metadata[STATE_KEY].stack.stack_shape)

    def _on_threshold_moved(self, _value=None, released: bool = False) -> None:
        state = self._state()
        if state is None:
            return
        dragging = not released and any(
            s.isSliderDown() for s in (self.mask_slider, self.seed_slider, self.size_slider))
        how = update_plan(state, dragging)
        if how.startswith("background"):
            self._update_in_background(state, plane_only=how == "background plane")
        elif how == "plane":  # dragging on a stack: the plane on screen only
            i = self._current_plane(self.labels_layer)
            if i in state.stack.sheds:
                self._write_plane(state, i, state.stack.plane_labels(i, self.thresholds()))
        else:
            self._update_all(state)

    def _on_threshold_released(self) -> None:
        self._on_threshold_moved(released=True)

    def _update_in_background(self, state: SegmentationState, plane_only: bool) -> None:
        """Re-threshold in a worker; while one runs, only the latest request is kept."""
        request = self._updates.submit((state, plane_only and bool(state.stack.stack_shape)))
        if request is not None:
            self._start_update(*request)

    def _start_update(self, state: SegmentationState, plane_only: bool) -> None:
        t = self.thresholds()
        i = self._current_plane(self.labels_layer) if plane_only else None
        if plane_only and i not in state.stack.sheds:
            self._on_shed_finished()
            return

        def work():
            if plane_only:
                return state.stack.plane_labels(i, t)
            return state.stack.stack_labels(t, state.view_shape)

        self.count_label.setText("Updating…")
        start_worker(self, work, returned=lambda lab: self._apply_background(state, t, i, lab),
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
        request = self._updates.finished()
        if request is not None:
            self._start_update(*request)

    @property
    def updating(self) -> bool:
        """A background re-threshold is running or queued."""
        return self._updates.busy

    def _write_plane(self, state: SegmentationState, i: int, lab: np.ndarray) -> None:
        layer = self.labels_layer
        if not write_plane(layer.data, i, lab, state.edited):
            return  # ids would overflow the layer's dtype; the release recomputes everything
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
        labels = linked_labels(labels, len(state.view_shape) - 2,
                               self.stitch_check.isChecked(), self.track_check.isChecked())
        if state.edited is not None and state.edited.any():
            labels = merge_with_locked(labels, np.asarray(layer.data), state.edited)
            if not state.told_about_edits:
                state.told_about_edits = True
                show_info("Objects you edited by hand are kept; only the rest is recomputed")
        if layer.data is not labels:
            layer.data = labels
        n = count_objects(labels)
        where = "" if not state.stack.stack_shape else f" in {len(state.stack.sheds)} plane(s)"
        self.count_label.setText(f"{n} objects{where}")

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
            planes = [plane_at(layer.world_to_data(self.viewer.dims.point), view.stack_shape)]
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
        stack, labels, diameter = result
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
            labels = state.carry_over(existing.metadata.get(STATE_KEY), labels)
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
        said = describe_diameter(diameter, self.diameter())
        self.status_label.setText(f"Done in {seconds:.1f} s on {predictor.device}." + said)
        self.diameter_label.setText(f"used {diameter:.1f} px" if diameter else "")

    def _on_paint(self, event) -> None:
        layer = event.source
        state = layer.metadata.get(STATE_KEY)
        if state is not None:
            state.mark_edited(event.value, layer.data.shape)

    def _show_maps(self, image_layer, view, stack, targets: str) -> None:
        for c, cname in enumerate(TARGET_MODES[targets].map_names):
            arr = stack.channel(c, view.label_shape)
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
