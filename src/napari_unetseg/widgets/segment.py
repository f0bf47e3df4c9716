"""The main dock widget: model, segment and watershed panels.

The Segment group's parameters are a magicgui form (:mod:`.segment_form`); the
Model group stays plain Qt because it needs a file dialog fed by a remembered recent list and
a combo that changes its own items, which magicgui's widgets do not offer. Inference runs in a
napari worker thread (:func:`core.run.segmentation.segment`); the Watershed group redoes the labels
from the cached maps when a slider moves.
"""

from __future__ import annotations

import time

from qtpy.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_unetseg.core.base.modes import TARGET_MODES

from .common import (
    connect_layer_events,
    first_line,
    preload_labels_display,
    scroll_layout,
)
from .jobs import Job
from .layer_keys import AXES_KEY, PROVENANCE_KEY, STATE_KEY
from .model_panel import ModelPanel
from .segment_form import SCOPES, SegmentForm
from .session import (
    ImageView,
    SegmentationState,
    describe_diameter,
    plane_at,
)
from .viewer_session import SEGMENT, ViewerSession, real_viewer
from .watershed_panel import WatershedPanel


class SegmentWidget(QWidget):
    """Segment the chosen image layer with a U-Net and tune the watershed live."""

    def __init__(self, napari_viewer, autoload: bool = True):
        super().__init__()
        # The real viewer, not napari's per-panel proxy: other panels find this one (to
        # segment with the model and thresholds the user chose) through the session.
        self.viewer = napari_viewer = real_viewer(napari_viewer)
        self.session = ViewerSession.of(napari_viewer)
        self.session.register(SEGMENT, self)
        self.job = Job(self)
        self.job.progress.connect(self._on_tick)

        self.model_panel = ModelPanel(self, autoload=autoload, model=self.session.model)
        self.watershed = WatershedPanel(napari_viewer)
        self.model_panel.model_loaded.connect(self._on_model_loaded)

        self.form = SegmentForm(napari_viewer)
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Segment the chosen image with the loaded model")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        # A plain progress bar: napari's own re-enters the event loop on every update, which
        # let late ticks overwrite the final status ("Segmenting… tile 1/1" beside a result).
        self.progress_bar = QProgressBar()
        self.progress_bar.setVisible(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        group = QGroupBox("Segment")
        inner = QVBoxLayout(group)
        inner.addWidget(self.form.native)
        inner.addLayout(buttons)
        inner.addWidget(self.progress_bar)
        inner.addWidget(self.status_label)

        layout = scroll_layout(self)
        layout.addWidget(self.model_panel)
        layout.addWidget(group)
        layout.addWidget(self.watershed)
        layout.addStretch(1)

        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        connect_layer_events(napari_viewer, self._on_layers_changed)
        self._on_layers_changed()

    # ------------------------------------------------------------------ inputs
    def _on_layers_changed(self, event=None) -> None:
        self.form.layers_changed(event)
        if self.labels_layer is not None and self.labels_layer not in self.viewer.layers:
            self.watershed.labels_layer = None

    def choose_image(self, layer) -> None:
        """Make ``layer`` the image to segment."""
        self.form.image_picker.reset_choices()
        self.form.image_picker.value = layer

    def thresholds(self) -> dict:
        """The watershed thresholds on the sliders."""
        return self.watershed.thresholds()

    @property
    def labels_layer(self):
        """The Labels layer of the last run (the one the sliders act on), or None."""
        return self.watershed.labels_layer

    @property
    def updating(self) -> bool:
        """A background re-threshold is running or queued."""
        return self.watershed.updating

    def _on_model_loaded(self, predictor) -> None:
        self.session.set_model(self.model_panel.current or "default")
        self.watershed.model_loaded(predictor)
        self.form.model_loaded(predictor)

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        """Segment the chosen image layer in a worker thread."""
        from napari.utils.notifications import show_error

        if self.job.running:
            return
        layer = self.form.image_picker.value
        if layer is None or layer not in self.viewer.layers:
            show_error("Choose an image layer to segment (open an image first)")
            return
        predictor = self.model_panel.predictor
        if predictor is None:
            show_error("No model is loaded yet; wait for it or choose a checkpoint")
            return
        try:
            view = self.form.checked_view()
        except ValueError as exc:
            show_error(str(exc))
            return
        linking = self.form.linking(view)
        channel = (None if self.form.channel_axis.value is None
                   else int(self.form.channel.value))
        self.watershed.follow_mode(linking["stack_mode"] == "3d")
        from napari_unetseg.core.run.segmentation import SegmentationRequest, segment

        volumetric = linking["stack_mode"] == "3d"
        voxel = self.form.voxel_size() if volumetric else None
        if volumetric:
            # The image is shown at its voxel size, and the labels will be too.
            layer.scale = (*layer.scale[:-3], *voxel)
        planes = None
        if not volumetric and self.form.scope.value == SCOPES[0] and view.stack_shape:
            planes = (plane_at(layer.world_to_data(self.viewer.dims.point), view.stack_shape),)
        # Maps are kept for live thresholds; ids are linked as the labels are shown.
        request = SegmentationRequest(
            axes=view.axes, mode=linking["stack_mode"], diameter=self.form.diameter(),
            thresholds=self.thresholds(), track=linking["track"], voxel_size=voxel,
            keep_maps=True, planes=planes, link=False,
            model=self.model_panel.current or "default", source=layer.name, channel=channel)

        def work():
            preload_labels_display()
            return segment(predictor, view.data, request, progress=self.job.report,
                           cancel=self.job.cancelled)

        self._started = time.perf_counter()
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status_label.setText(f"Segmenting {layer.name} on {predictor.device}…")
        self.progress_bar.setRange(0, 0)  # busy until the first tile is done
        self.progress_bar.setVisible(True)
        self.job.start(work, returned=lambda r: self._on_done(layer, view, predictor, linking, r),
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
        self.job.cancel()
        self.status_label.setText("Cancelling…")

    def _on_tick(self, done: int, total: int) -> None:
        if not self.job.running:
            return  # a tick queued before the run ended: the result's status stands
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(done)
        self.status_label.setText(f"Segmenting… {done}/{total}")

    def _on_done(self, image_layer, view: ImageView, predictor, linking: dict,
                 result) -> None:
        if image_layer not in self.viewer.layers:
            # The image was closed meanwhile (the browser moved on): drop the result rather
            # than add labels for an image that is gone.
            self.status_label.setText("The image was closed before its result arrived.")
            return
        stack, labels, diameter = result.maps, result.labels, result.diameter
        name = f"{image_layer.name} labels"
        state = SegmentationState(
            image_name=image_layer.name, view_shape=view.label_shape, stack=stack,
            thresholds=self.thresholds(), model=self.model_panel.current or "default",
            **linking)
        metadata = {
            STATE_KEY: state,
            AXES_KEY: view.label_axes,
            PROVENANCE_KEY: result.provenance,
        }
        existing = self.viewer.layers[name] if name in self.viewer.layers else None
        if existing is not None and existing.data.shape == labels.shape:
            labels = state.carry_over(existing.metadata.get(STATE_KEY), labels)
            existing.metadata.update(metadata)
            existing.scale = image_layer.scale[-len(view.label_shape):]
            self.watershed.labels_layer = existing
        else:
            n = len(view.label_shape)
            self.watershed.labels_layer = self.viewer.add_labels(
                labels, name=name, metadata=metadata, scale=image_layer.scale[-n:],
                translate=image_layer.translate[-n:])
            self.labels_layer.events.paint.connect(self._on_paint)
        self.watershed.show_labels(labels)
        if self.form.show_maps.value:
            self._show_maps(image_layer, view, stack, predictor.targets)
        seconds = time.perf_counter() - self._started
        said = describe_diameter(diameter, self.form.diameter())
        self.status_label.setText(f"Done in {seconds:.1f} s on {predictor.device}." + said)

    def _on_paint(self, event) -> None:
        layer = event.source
        state = layer.metadata.get(STATE_KEY)
        if state is not None:
            state.mark_edited(event.value, layer.data.shape)
            if layer is self.labels_layer:
                self.watershed.recount()

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

        from napari_unetseg.core.inference.predictor import Cancelled

        if isinstance(exc, Cancelled):
            show_info("Segmentation cancelled; nothing was changed")
            self.status_label.setText("Cancelled.")
        else:
            msg = first_line(exc)
            show_error(f"Segmentation failed: {msg}")
            self.status_label.setText(f"Failed: {msg}")

    def _on_finished(self) -> None:
        self.progress_bar.setVisible(False)
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    @property
    def busy(self) -> bool:
        return self.job.running
