"""Dock widget: segment a large image (OME-Zarr, a big TIFF) block by block, here or on a
Dask cluster, writing labels to Zarr while napari shows them fill in.

A magicgui form for the parameters; the work is :func:`core.batch.segment_into_zarr` in a
worker thread. OME-Zarr images are opened lazily by the napari-ome-zarr reader.
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from .common import (
    connect_layer_events,
    first_line,
    follow_layers,
    layer_picker,
    scroll_layout,
)
from .jobs import Job
from .layer_keys import ZARR_KEY
from .viewer_session import LARGE_IMAGE, ViewerSession, real_viewer

REGIONS = ("Current view", "Whole image")
PLACES = ("This computer", "Dask scheduler")


def view_region(viewer, layer) -> tuple[int, int, int, int]:
    """The part of an image layer on screen, in full-resolution pixels (y0, y1, x0, x1).

    From the camera (centre, zoom) and the canvas size: the layer's own corner pixels
    follow the loaded pyramid level, not what is on screen.
    """
    import numpy as np

    camera = getattr(viewer, "scene", viewer).camera  # napari 0.9 moved it to the scene
    h, w = viewer.canvas.size
    zoom = camera.zoom
    cy, cx = camera.center[-2:]
    point = list(viewer.dims.point)
    corners = []
    for y, x in ((cy - h / zoom / 2, cx - w / zoom / 2), (cy + h / zoom / 2, cx + w / zoom / 2)):
        point[-2:] = [y, x]
        corners.append(np.asarray(layer.world_to_data(point))[-2:])
    (y0, x0), (y1, x1) = np.floor(np.min(corners, 0)), np.ceil(np.max(corners, 0))
    return int(y0), int(y1), int(x0), int(x1)


def image_source_of(layer):
    """The layer's file when it has one (workers elsewhere read it), else its data."""
    path = getattr(getattr(layer, "source", None), "path", None)
    if path and Path(path).exists():
        return str(path)
    return layer.data[0] if layer.multiscale else layer.data


class LargeImageWidget(QWidget):
    """Segment a large 2D image block by block into Zarr labels, here or on a cluster."""

    def __init__(self, napari_viewer):
        from magicgui.widgets import ComboBox, Container, FileEdit, LineEdit, SpinBox
        from napari.layers import Image

        super().__init__()
        self.viewer = napari_viewer = real_viewer(napari_viewer)
        self.session = ViewerSession.of(napari_viewer)
        self.session.register(LARGE_IMAGE, self)
        self.job = Job(self)
        self.job.progress.connect(self._on_tick)
        self.job.message.connect(self._on_message)
        self._done = 0
        self.labels_layer = None

        self.image_picker = layer_picker(napari_viewer, Image, "Image",
                                         "A large 2D image (an OME-Zarr opened lazily, say)")
        self.region = ComboBox(label="Region", choices=REGIONS, value=REGIONS[1],
                               tooltip="The part on screen (quick look), or all of it")
        self.place = ComboBox(label="Run on", choices=PLACES,
                              tooltip="This computer (worker processes), or the workers of "
                                      "a running Dask scheduler")
        self.workers = SpinBox(label="Workers", value=1, min=1, max=64,
                               tooltip="Worker processes on this computer (1: in napari's "
                                       "own process)")
        self.scheduler = LineEdit(label="Scheduler", value="tcp://127.0.0.1:8786",
                                  tooltip="Address of a running Dask scheduler; its workers "
                                          "need napari-unetseg and read the image's path")
        self.block = SpinBox(label="Block (px)", value=2048, min=256, max=16384, step=256,
                             tooltip="Edge of the blocks (tasks); memory per worker grows "
                                     "with its square")
        self.output = FileEdit(label="Labels (Zarr)", mode="w", filter="*.zarr",
                               tooltip="Where the labels go; an OME-Zarr image keeps them "
                                       "in its own labels/unetseg group when this is empty")
        self.form = Container(widgets=[self.image_picker, self.region, self.place,
                                       self.workers, self.scheduler, self.block, self.output])
        self.place.changed.connect(lambda _: self._update_place())
        self._auto_output = ""
        self.image_picker.changed.connect(lambda _: self._suggest_output())
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        # A plain progress bar: napari's re-enters the event loop on every update, which
        # delivers the worker's later signals inside the handler of an earlier one.
        self.progress_bar = QProgressBar()
        self.progress_bar.setVisible(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = scroll_layout(self)
        layout.addWidget(self.form.native)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        connect_layer_events(napari_viewer, self._on_layers_changed)
        self._update_place()
        self._suggest_output()

    def _on_layers_changed(self, event=None) -> None:
        follow_layers(self.image_picker, event)
        self._suggest_output()

    def _suggest_output(self) -> None:
        """Fill the labels path from the chosen image (beside its file, or in the home
        folder) until the user types their own. An OME-Zarr keeps its labels inside
        itself: the box stays empty for it."""
        from napari_unetseg.core.run.batch import is_zarr

        layer = self.image_picker.value
        current = str(self.output.value or "").strip()
        if layer is None or current not in ("", ".", self._auto_output):
            return
        source = image_source_of(layer)
        if isinstance(source, str) and is_zarr(Path(source)):
            return
        if isinstance(source, str):
            suggestion = str(Path(source).with_name(Path(source).stem + "_labels.zarr"))
        else:
            suggestion = str(Path.home() / "napari-unetseg" / f"{layer.name}_labels.zarr")
        self._auto_output = suggestion
        self.output.value = suggestion
        if self.labels_layer is not None and self.labels_layer not in self.viewer.layers:
            self.labels_layer = None

    def _update_place(self) -> None:
        local = self.place.value == PLACES[0]
        self.workers.visible = local
        self.scheduler.visible = not local

    def _model(self):
        from napari_unetseg.core.run.batch import ModelSpec

        # The device chosen in the Segment panel (each Dask worker resolves "auto" itself).
        segment = self.session.segment
        device = getattr(getattr(segment, "model_panel", None), "device", None) or "auto"
        return ModelSpec(str(self.session.model), device)

    def labels_path(self) -> Path | None:
        """The Zarr labels to write: the output box, else None (the image's own group)."""
        text = str(self.output.value or "").strip()
        if not text or text == ".":
            return None
        path = Path(text).expanduser()
        # An emptied box can come back from the file widget as the working directory.
        return None if path.resolve() == Path.cwd().resolve() else path

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        """Segment the chosen region in a worker thread."""
        from napari.utils.notifications import show_error

        from napari_unetseg.core.run.batch import is_zarr

        if self.busy:
            return
        layer = self.image_picker.value
        if layer is None:
            show_error("Open a large image first (an OME-Zarr, or a big TIFF)")
            return
        if layer.ndim != 2:
            show_error(f"{layer.name} has {layer.ndim} dimensions; large images are 2D here "
                       "(segment stacks in the Segment panel)")
            return
        source = image_source_of(layer)
        labels_path = self.labels_path()
        if labels_path is None and not (isinstance(source, str) and is_zarr(Path(source))):
            show_error("Choose where the labels go (Labels (Zarr)): this image is not an "
                       "OME-Zarr that can hold them")
            return
        region = view_region(self.viewer, layer) if self.region.value == REGIONS[0] else None
        model, block = self._model(), int(self.block.value)
        place, workers, address = self.place.value, int(self.workers.value), \
            str(self.scheduler.value)

        def work():
            from napari_unetseg.core.run.blockwise import segment_into_zarr

            from .model_panel import avoid_llvm_clash

            avoid_llvm_clash()  # torch is imported here in the viewer's process
            outcome: dict = {}
            try:
                with _executor(place, workers, address, self.job.cancelled) as executor:
                    outcome["path"] = segment_into_zarr(
                        source, model, labels_path=labels_path, region=region, block=block,
                        executor=executor, ready=lambda p: self.job.tell("ready")(str(p)),
                        progress=self.job.report, cancel=self.job.cancelled, overwrite=True)
            except Exception as exc:
                outcome["error"] = exc
            finally:
                # One signal after every tick, from this thread: the run ends there.
                self.job.tell("ended")(outcome)

        self._done = 0
        self._source_layer = layer
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(f"Segmenting {layer.name} ({self.region.value.lower()}) "
                            f"on {place.lower()}…")
        self.progress_bar.setRange(0, 0)  # busy until the first block
        self.progress_bar.setVisible(True)
        self.job.start(work)

    def cancel(self) -> None:
        """Stop between blocks; the blocks already written stay."""
        self.job.cancel()
        self.status.setText("Cancelling…")

    def _show_labels(self, path: str) -> None:
        """Show the Zarr labels as they are written (read lazily, refreshed per block)."""
        import zarr

        array = zarr.open_array(path, mode="r")
        layer = self._source_layer
        name = f"{layer.name} labels"
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        self.labels_layer = self.viewer.add_labels(
            array, name=name, scale=layer.scale[-2:], translate=layer.translate[-2:],
            metadata={ZARR_KEY: path})
        self.labels_layer.editable = False  # napari cannot paint into the file

    def _on_tick(self, done: int, total: int) -> None:
        # Ticks from the worker thread may arrive late or out of order: only progress
        # forward, and nothing after the run is over.
        if not self.busy or done <= self._done:
            return
        self._done = done
        self.progress_bar.setRange(0, total)
        self.progress_bar.setValue(done)
        self.status.setText(f"Block {done}/{total}")
        if self.labels_layer is not None:
            self.labels_layer.refresh()

    def _on_error(self, exc: Exception) -> None:
        from napari.utils.notifications import show_error, show_info

        from napari_unetseg.core.inference.predictor import Cancelled

        if isinstance(exc, Cancelled):
            show_info("Cancelled; the blocks already written stay")
            self.status.setText("Cancelled.")
        else:
            show_error(f"Segmentation failed: {first_line(exc)}")
            self.status.setText(f"Failed: {first_line(exc)}")

    def _on_message(self, kind: str, payload) -> None:
        if kind == "ready":
            self._show_labels(payload)
        elif kind == "ended":
            self._on_finished(payload)

    def _on_finished(self, outcome: dict) -> None:
        if "error" in outcome:
            self._on_error(outcome["error"])
        elif "path" in outcome:
            self.status.setText(f"Done: labels in {outcome['path']}")
        self.progress_bar.setVisible(False)
        if self.labels_layer is not None:
            self.labels_layer.refresh()
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    @property
    def busy(self) -> bool:
        return self.job.running


class _executor:
    """Context manager: where the blocks run (closes a cluster it started)."""

    def __init__(self, place: str, workers: int, address: str, cancel):
        self.place, self.workers, self.address, self.cancel = place, workers, address, cancel
        self.client = None

    def __enter__(self):
        from napari_unetseg.core.run.batch import DaskExecutor, dask_client
        from napari_unetseg.core.run.blockwise import LocalExecutor

        if self.place == PLACES[0] and self.workers <= 1:
            return LocalExecutor(self.cancel)
        self.client = dask_client(self.workers, None if self.place == PLACES[0] else self.address)
        return DaskExecutor(self.client.__enter__())

    def __exit__(self, *exc):
        if self.client is not None:
            self.client.__exit__(*exc)
        return False
