"""Browse widget: click through a folder of images, segment, correct, save, export.

Labels are saved to the output folder (default: ``labels/`` inside the image folder) when
the user moves on, closes the panel or quits; reopening the folder resumes at the first
image without labels. Export writes TIFF label stacks and per-object CSV tables.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtCore import QEvent
from qtpy.QtWidgets import (
    QApplication,
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPushButton,
    QWidget,
)

from napari_unetseg.core.io.folder import ImageFolder

from .browse_export import LabelExport
from .common import scroll_layout
from .jobs import Job
from .layer_keys import AXES_KEY, PROVENANCE_KEY, STATE_KEY
from .viewer_session import BROWSE, ViewerSession, real_viewer

DONE = "✓ "


def read_for_display(folder: ImageFolder, path: Path, model: str):
    """Worker: the image, its saved labels (labels, axes, provenance) or None, and whether
    those labels are outdated (a model's, nobody corrected, not ``model``'s)."""
    from napari_unetseg.core.io.images import read_image, read_label_tiff

    image = read_image(path)
    if not folder.has_labels(path):
        return image, None, False
    stored = read_label_tiff(folder.label_path(path))
    return image, stored, folder.outdated(path, model, provenance=stored[2])


class BrowseWidget(LabelExport, QWidget):
    """Move through the images of a folder; labels are saved per image as TIFF."""

    def __init__(self, napari_viewer):
        super().__init__()
        # The real viewer behind napari's per-panel proxy; the training panel finds this
        # browser (and its saved labels) through the viewer's session.
        self.viewer = napari_viewer = real_viewer(napari_viewer)
        self.session = ViewerSession.of(napari_viewer)
        self.session.register(BROWSE, self)
        #: The user painted on the current labels (as opposed to a fresh segmentation).
        self.edited = False
        #: The folder's images and the rules about their label files (core).
        self.folder = ImageFolder()
        self.index: int | None = None
        self.job = Job(self)
        #: The image being read, and the one asked for meanwhile (the last ask wins).
        self._opening: int | None = None
        self._wanted: int | None = None
        self.image_layer = None
        self.labels_layer = None
        self.dirty = False

        self._make_controls()
        self._lay_out()
        self._connect(napari_viewer)
        self._update_buttons()

    def _make_controls(self) -> None:
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("folder of images")
        self.folder_button = QPushButton("Choose…")
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("default: labels/ inside the image folder")
        self.out_button = QPushButton("Choose…")
        self.list = QListWidget()
        self.list.setToolTip(f"{DONE.strip()} = labels saved")
        self.prev_button = QPushButton("◀ Previous")
        self.prev_button.setToolTip("Save and go to the previous image (Page Up)")
        self.next_button = QPushButton("Next ▶")
        self.next_button.setToolTip("Save and go to the next image (Page Down)")
        self.auto_check = QCheckBox("Segment images without labels automatically")
        self.auto_check.setChecked(True)
        self.ask_check = QCheckBox("Ask before saving")
        self.include_uncorrected = QCheckBox("Include labels nobody corrected")
        self.include_uncorrected.setToolTip(
            "Export all: also the images whose labels are the model's, as segmented")
        self.export_layer_button = QPushButton("Export current labels…")
        self.export_all_button = QPushButton("Export all labels…")
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)

    def _lay_out(self) -> None:
        row1 = QHBoxLayout()
        row1.addWidget(self.folder_edit, 1)
        row1.addWidget(self.folder_button)
        row2 = QHBoxLayout()
        row2.addWidget(self.out_edit, 1)
        row2.addWidget(self.out_button)
        nav = QHBoxLayout()
        nav.addWidget(self.prev_button)
        nav.addWidget(self.next_button)
        exp = QHBoxLayout()
        exp.addWidget(self.export_layer_button)
        exp.addWidget(self.export_all_button)
        form = QFormLayout()
        form.addRow("Images:", row1)
        form.addRow("Labels to:", row2)
        layout = scroll_layout(self)
        layout.addLayout(form)
        layout.addWidget(self.list, 1)
        layout.addLayout(nav)
        layout.addWidget(self.auto_check)
        layout.addWidget(self.ask_check)
        layout.addWidget(self.include_uncorrected)
        layout.addLayout(exp)
        layout.addWidget(self.status_label)

    def _connect(self, napari_viewer) -> None:
        self.folder_button.clicked.connect(self._choose_folder)
        self.out_button.clicked.connect(self._choose_output)
        self.folder_edit.returnPressed.connect(
            lambda: self.open_folder(self.folder_edit.text(), self.out_edit.text() or None))
        self.prev_button.clicked.connect(self.previous)
        self.next_button.clicked.connect(self.next)
        self.list.itemActivated.connect(lambda item: self.open_image(self.list.row(item)))
        self.export_layer_button.clicked.connect(self.export_current)
        self.export_all_button.clicked.connect(self.export_all)
        napari_viewer.layers.events.inserted.connect(self._adopt_hand_made)
        napari_viewer.bind_key("PageDown", lambda v: self.next(), overwrite=True)
        napari_viewer.bind_key("PageUp", lambda v: self.previous(), overwrite=True)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self._save_on_exit)
        # Closing the viewer window: save edited labels before the layers go away.
        qt_window = getattr(getattr(napari_viewer, "window", None), "_qt_window", None)
        if qt_window is not None:
            qt_window.installEventFilter(self)

    # ------------------------------------------------------------------ folder
    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of images")
        if folder:
            self.open_folder(folder, self.out_edit.text() or None)

    def _choose_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the label files")
        if folder:
            self.out_edit.setText(folder)
            if self.images:
                self.folder.out_dir = Path(folder)
                self._refresh_list()

    def open_folder(self, folder: str | Path, out_dir: str | Path | None = None) -> None:
        """List the folder's images and open the first one without saved labels."""
        from napari.utils.notifications import show_error

        from napari_unetseg.core.io.images import ImageReadError

        self._leave_current()
        try:
            opened = ImageFolder.open(folder, out_dir)
        except ImageReadError as exc:
            show_error(str(exc))
            return
        self.folder = opened
        self.folder_edit.setText(str(Path(folder).expanduser()))
        self.out_edit.setText(str(self.out_dir))
        self._refresh_list()
        self.index = None
        self.open_image(opened.first_without_labels())

    @property
    def images(self) -> list[Path]:
        return self.folder.images

    @property
    def out_dir(self) -> Path | None:
        return self.folder.out_dir

    def label_path(self, image: Path) -> Path:
        return self.folder.label_path(image)

    def _refresh_list(self) -> None:
        self.list.clear()
        for p in self.images:
            self.list.addItem((DONE if self.label_path(p).exists() else "   ") + p.name)
        if self.index is not None:
            self.list.setCurrentRow(self.index)

    def _update_buttons(self) -> None:
        self.prev_button.setEnabled(bool(self.images) and (self.index or 0) > 0)
        self.next_button.setEnabled(
            bool(self.images) and self.index is not None and self.index < len(self.images) - 1
        )
        done = self.folder.labelled_count()
        if self.images:
            self.status_label.setText(
                f"Image {self.index + 1} of {len(self.images)}; {done} with saved labels.")

    # ------------------------------------------------------------------ moving
    def _current_or_wanted(self) -> int | None:
        """Where Next and Previous count from: the last image asked for."""
        for i in (self._wanted, self._opening, self.index):
            if i is not None:
                return i
        return None

    def next(self) -> None:
        i = self._current_or_wanted()
        if i is not None and i < len(self.images) - 1:
            self.open_image(i + 1)

    def previous(self) -> None:
        i = self._current_or_wanted()
        if i:
            self.open_image(i - 1)

    def open_image(self, i: int) -> None:
        """Open image ``i`` with its saved labels (or segment it); save the current first.

        The files are read in a worker thread (large TIFFs take seconds); the layers appear
        when they are read. Asked while another image is being read, the last ask is opened
        next (images pressed past are not opened).
        """
        if self.busy:
            self._wanted = i
            return
        if not self._leave_current():
            return
        path, saved = self.images[i], self.label_path(self.images[i])
        folder, model = self.folder, self.session.model
        self.status_label.setText(f"Opening {path.name}…")
        self._opening = i
        self.job.start(lambda: read_for_display(folder, path, model),
                       returned=lambda r: self._show_read(i, path, saved, *r),
                       errored=self._on_read_error, finished=self._after_read)

    def _after_read(self) -> None:
        self._opening = None
        self._update_buttons()
        wanted, self._wanted = self._wanted, None
        if wanted is not None and wanted != self.index:
            self.open_image(wanted)

    def _on_read_error(self, exc: Exception) -> None:
        from napari.utils.notifications import show_error

        from .common import first_line

        show_error(first_line(exc))
        self.status_label.setText(first_line(exc))

    def _show_read(self, i: int, path: Path, saved: Path, image, stored, redo: bool) -> None:
        """Show what :func:`read_for_display` read for image ``i``."""
        from napari.utils.notifications import show_error

        for layer in (self.image_layer, self.labels_layer):
            if layer is not None and layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self.index = i
        self.labels_layer = None
        rgb = image.ndim == 3 and image.shape[-1] in (3, 4)
        self.image_layer = self.viewer.add_image(image, name=path.stem, rgb=rgb)
        if stored is not None and not (redo and self.auto_check.isChecked()):
            labels, axes, prov = stored
            plane = image.shape[:2] if not rgb or image.ndim == 3 else image.shape[-3:-1]
            refusal = self.folder.refusal(path, prov, labels.shape, plane)
            if refusal is not None:
                show_error(refusal)
            else:
                self._track(self.viewer.add_labels(
                    labels, name=f"{path.stem} labels",
                    metadata={AXES_KEY: axes, PROVENANCE_KEY: prov}))
        elif self.auto_check.isChecked():
            # No labels yet, or a model's labels nobody corrected: the model in use's.
            self._segment(path.stem)
        self.list.setCurrentRow(i)

    @property
    def busy(self) -> bool:
        """An image is being read."""
        return self.job.running

    def _segment(self, name: str) -> None:
        from napari.utils.notifications import show_info

        seg = self.session.segment
        if seg is None:
            show_info("Open 'Segment nuclei (U-Net)' to segment images automatically")
            return
        seg.choose_image(self.viewer.layers[name])

        def adopt(event):
            layer = event.value
            if layer.name == f"{name} labels":
                self.viewer.layers.events.inserted.disconnect(adopt)
                self._track(layer)
                self.dirty = True  # a new segmentation is unsaved work

        self.viewer.layers.events.inserted.connect(adopt)
        seg.run_when_ready()

    def _adopt_hand_made(self, event) -> None:
        """A Labels layer the user makes for the image on screen (Layers ▸ New labels) is
        its labels from then on: saved like the others."""
        from napari.layers import Labels

        from .common import is_helper_layer

        layer = event.value
        if (not isinstance(layer, Labels) or is_helper_layer(layer) or self.index is None
                or self.image_layer is None or self.image_layer not in self.viewer.layers
                or (self.labels_layer is not None and self.labels_layer in self.viewer.layers)
                or STATE_KEY in layer.metadata
                or PROVENANCE_KEY in layer.metadata):
            return
        image = self.image_layer
        plane = image.data.shape[:-1] if image.rgb else image.data.shape
        if tuple(layer.data.shape[-2:]) == tuple(plane[-2:]):
            self._track(layer)

    def _track(self, layer) -> None:
        self.labels_layer = layer
        self.dirty = False
        self.edited = False
        layer.events.paint.connect(self._mark_edited)
        layer.events.data.connect(self._mark_dirty)

    def _mark_dirty(self, event=None) -> None:
        self.dirty = True

    def _mark_edited(self, event=None) -> None:
        self.dirty = self.edited = True

    def _leave_current(self) -> bool:
        """Save the current labels if they changed (asking first if so set)."""
        if not self.dirty or self.labels_layer is None or self.index is None:
            return True
        if self.ask_check.isChecked():
            answer = QMessageBox.question(
                self, "Save labels?", f"Save the labels of {self.images[self.index].name}?",
                QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                | QMessageBox.StandardButton.Cancel,
            )
            if answer == QMessageBox.StandardButton.Cancel:
                return False
            if answer == QMessageBox.StandardButton.Discard:
                self.dirty = False
                return True
        return self.save()

    def save(self) -> bool:
        """Write the current labels to ``<output>/<image stem>.tif``."""
        from napari.utils.notifications import show_error

        from napari_unetseg.core.io.images import write_label_tiff

        if self.labels_layer is None or self.index is None:
            return True
        image = self.images[self.index]
        path = self.label_path(image)
        if not self.folder.may_replace(image):
            show_error(f"Not saved: {path} holds another image's labels; choose another "
                       "'Labels to' folder")
            return False
        md = self.labels_layer.metadata
        prov = self.folder.save_record(md.get(PROVENANCE_KEY), image, self.edited)
        try:
            # The file holds this image's own labels, loaded or made in this panel, so
            # replacing it is the save the user asked for.
            write_label_tiff(path, np.asarray(self.labels_layer.data),
                             axes=md.get(AXES_KEY), overwrite=True, provenance=prov)
        except (OSError, ValueError) as exc:
            show_error(f"Could not save {path}: {exc}")
            return False
        self.dirty = False
        self._refresh_list()
        self._update_buttons()
        return True

    def _save_on_exit(self) -> None:
        if self.dirty:
            self.save()

    def event(self, event) -> bool:
        # Closing the dock takes the panel out of the window (napari keeps the object):
        # the keys it bound go back to napari, and edited labels are saved.
        if event.type() == QEvent.Type.ParentChange and self.parent() is None:
            for key in ("PageDown", "PageUp"):
                try:
                    self.viewer.bind_key(key, None)
                except (KeyError, ValueError, TypeError):
                    pass
            if self.dirty:
                self.save()
        return super().event(event)

    def hideEvent(self, event) -> None:  # the dock was closed
        if self.dirty:
            self.save()
        super().hideEvent(event)

    def eventFilter(self, obj, event) -> bool:  # the viewer window is closing
        if event.type() == QEvent.Type.Close and self.dirty:
            self.save()
        return False

    def saved_pairs(self) -> list[tuple[Path, Path]]:
        """(image, labels file) of the folder's images whose saved labels someone corrected
        (or that no model made)."""
        return self.folder.corrected_pairs()

    def segment_remaining(self) -> None:
        """Go to the first image without corrected labels and segment it with the model in
        use; from then on, labels that nobody corrected and that another model made are
        segmented again as the user moves through the folder."""
        from napari.utils.notifications import show_info

        todo = self.folder.uncorrected()
        if not todo:
            show_info("Every image of the folder has corrected labels")
            return
        self.auto_check.setChecked(True)
        self.folder.redo_uncorrected = True
        self.open_image(todo[0])

