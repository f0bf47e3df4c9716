"""Dock widget "Train on corrected labels": fine-tune the model in use on the user's labels.

magicgui builds the settings form and the layer pickers. Plain Qt where magicgui has no
widget for the job: the list of images with a checkbox each, and the small live plot.
The work is :func:`napari_unetseg.core.training.finetune.fine_tune`, in a worker thread.
"""

from __future__ import annotations

import datetime as _dt
import gc
import time
from pathlib import Path

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QWidget,
)

from napari_unetseg.core.training.finetune import FINETUNE_DEFAULTS

from .common import first_line, is_alive, scroll_layout
from .jobs import Job
from .training_plot import CurvePlot, time_left
from .viewer_session import TRAIN, ViewerSession, real_viewer

FROM_BROWSER = "Saved labels of the browsed folder"
FROM_LAYERS = "An image layer and its Labels layer"
LEARNING_RATES = ("1e-4", "2e-4", "5e-4", "1e-3", "2e-3")


class TrainWidget(QWidget):
    """Fine-tune the model in use on labels the user corrected."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer = real_viewer(napari_viewer)
        self.session = ViewerSession.of(napari_viewer)
        self.session.register(TRAIN, self)
        self.job = Job(self)
        self.job.progress.connect(self._on_step)
        self.job.message.connect(self._on_message)
        self._started = 0.0
        self._epochs_done = 0
        self.result: dict | None = None
        self._auto_output: str | None = None  # the default file name last filled in

        self.form = self._make_form()
        self.source.changed.connect(self._update_source)
        self._make_controls()
        self._lay_out()
        self._connect(napari_viewer)
        self._update_source()

    def _make_form(self):
        """The magicgui form of the run's settings."""
        from magicgui.widgets import (
            CheckBox,
            ComboBox,
            Container,
            FileEdit,
            FloatSpinBox,
            SpinBox,
            create_widget,
        )
        from napari.layers import Image, Labels

        self.source = ComboBox(label="Train on", choices=[FROM_BROWSER, FROM_LAYERS],
                               tooltip="Which corrected labels to learn from")
        self.image_layer = create_widget(annotation=Image, label="Image",
                                         options={"tooltip": "The image you corrected"})
        self.labels_layer = create_widget(annotation=Labels, label="Labels",
                                          options={"tooltip": "Its corrected labels"})
        self.minutes = FloatSpinBox(
            label="Minutes", value=FINETUNE_DEFAULTS["minutes"], min=0.5, max=600, step=0.5,
            tooltip="Training time; the best model so far is kept when it ends or you cancel")
        self.epochs = SpinBox(label="Epochs (0: no limit)", value=0, min=0, max=10_000,
                              tooltip="Stop after this many epochs (of 64 crops) if sooner")
        self.lr = ComboBox(label="Learning rate", choices=LEARNING_RATES,
                           value=next(r for r in LEARNING_RATES
                                      if float(r) == FINETUNE_DEFAULTS["lr"]),
                           tooltip="Peak learning rate; lower changes the model less")
        self.hold_out = CheckBox(
            text="Hold out one image to measure before/after", value=True,
            tooltip="The last chosen image is kept out of the first half of training; its "
                    "mAP is shown before and after that half, then it is trained on too "
                    "(on by default with 3 images or more)")
        self.tune = CheckBox(text="Tune thresholds on my images", value=True,
                             tooltip="Pick the watershed thresholds that score best on the "
                                     "training images")
        self.output = FileEdit(label="Save as", mode="w", filter="*.pt",
                               tooltip="New checkpoint; an existing file is never replaced")
        return Container(widgets=[
            self.source, self.image_layer, self.labels_layer, self.minutes, self.epochs,
            self.lr, self.hold_out, self.tune, self.output])

    def _make_controls(self) -> None:
        self.images_list = QListWidget()
        self.images_list.setToolTip("Images of the browsed folder whose labels you corrected "
                                    "and saved; untick the ones to leave out")
        self.images_list.itemChanged.connect(lambda _: self._update_hold_out())
        self.refresh_button = QPushButton("Refresh list")
        self.train_button = QPushButton("Train")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.setToolTip("Stop at the next step and keep the best model so far")
        self.remaining_button = QPushButton("Segment the remaining images")
        self.remaining_button.setToolTip("In the folder browser, go to the first image "
                                         "without saved labels and segment it with the new model")
        self.remaining_button.setEnabled(False)
        self.plot = CurvePlot()
        self.base_label = QLabel("")
        self.base_label.setWordWrap(True)
        self.base_label.setToolTip("Training starts from the model in use in the Segment panel")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # A plain progress bar with the time left; napari's own re-enters the event loop.
        self.progress_bar = QProgressBar()
        self.progress_bar.setVisible(False)

    def _lay_out(self) -> None:
        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.cancel_button)
        layout = scroll_layout(self)
        layout.addWidget(self.base_label)
        layout.addWidget(self.form.native)
        layout.addWidget(self.images_list, 1)
        layout.addWidget(self.refresh_button)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.plot)
        layout.addWidget(self.status)
        layout.addWidget(self.remaining_button)

    def _connect(self, napari_viewer) -> None:
        self.refresh_button.clicked.connect(self.refresh)
        self.session.model_changed.connect(self._on_model_changed)
        self.train_button.clicked.connect(self.train)
        self.cancel_button.clicked.connect(self.cancel)
        self.remaining_button.clicked.connect(self._segment_remaining)
        # Closing the viewer stops a run at its next step (the best model so far is kept).
        qt_window = getattr(getattr(napari_viewer, "window", None), "_qt_window", None)
        if qt_window is not None:
            qt_window.installEventFilter(self)

    def output_path(self) -> Path:
        """The checkpoint to write: the Save-as box, made a ``.pt`` file name (empty: the
        default name; a folder: the default name inside it)."""
        text = str(self.output.value or "").strip()
        if text in ("", "."):
            return self._default_output()
        out = Path(text).expanduser()
        if out.is_dir():
            return out / self._default_output().name
        return out if out.suffix.lower() == ".pt" else out.with_name(out.name + ".pt")

    def event(self, event) -> bool:
        from qtpy.QtCore import QEvent

        # Closing the dock takes the panel out of the window (napari does not delete it):
        # a run it started stops at its next step, the best model so far is kept.
        if event.type() == QEvent.Type.ParentChange and self.parent() is None and self.busy:
            self.job.cancel()
        return super().event(event)

    def eventFilter(self, obj, event) -> bool:  # the viewer window is closing
        from qtpy.QtCore import QEvent

        if event.type() == QEvent.Type.Close and self.busy:
            self.job.cancel()
        return False

    # ------------------------------------------------------------------ inputs
    def reset_choices(self, event=None) -> None:
        """napari calls this when layers change: refresh the layer pickers."""
        self.form.reset_choices()

    def _browser(self):
        return self.session.browser

    def _on_model_changed(self, _path: str) -> None:
        if is_alive(self):
            self._show_base()

    def _update_source(self, _=None) -> None:
        browsing = self.source.value == FROM_BROWSER
        self.image_layer.visible = self.labels_layer.visible = not browsing
        self.images_list.setVisible(browsing)
        self.refresh_button.setVisible(browsing)
        self.refresh()

    def refresh(self) -> None:
        """List the browsed folder's images with saved, corrected labels."""
        self.images_list.clear()
        browser = self._browser()
        if browser is not None and browser.images and browser.out_dir is not None:
            if browser.dirty:
                browser.save()  # the image on screen counts with its latest edits
            for image, labels in browser.saved_pairs():
                item = QListWidgetItem(image.name)
                item.setData(Qt.ItemDataRole.UserRole, (str(image), str(labels)))
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked)
                self.images_list.addItem(item)
        self._update_hold_out()
        self._show_base()
        # Follow the data source until the user types a file name of their own.
        current = str(self.output.value or "")
        if current in (".", "", self._auto_output):
            self._auto_output = str(self._default_output())
            self.output.value = self._auto_output

    def base_model(self) -> str:
        """The checkpoint training starts from: the one in use in the Segment panel."""
        return self.session.model

    def _show_base(self) -> None:
        base = self.base_model()
        name = "the bundled model" if base == "default" else Path(base).name
        self.base_label.setText(f"Starting from {name} (the model in use)")

    def _update_hold_out(self) -> None:
        from napari_unetseg.core.training.finetune import held_out_count

        n = len(self._checked()) if self.source.value == FROM_BROWSER else 1
        self.hold_out.value = held_out_count(n, None) > 0  # core's default rule

    def _checked(self) -> list[tuple[str, str]]:
        items = (self.images_list.item(i) for i in range(self.images_list.count()))
        return [it.data(Qt.ItemDataRole.UserRole) for it in items
                if it.checkState() == Qt.CheckState.Checked]

    def _default_output(self) -> Path:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M")
        browser = self._browser()
        if self.source.value == FROM_BROWSER and browser is not None and browser.out_dir:
            # Next to the labels folder.
            return browser.out_dir.parent / f"unetseg_model_{stamp}.pt"
        return Path.home() / "napari-unetseg-models" / f"unetseg_model_{stamp}.pt"

    def training_sources(self) -> list:
        """What to train on, without reading a file: (image, labels) file pairs of the
        browsed folder, or one TrainingPair of the chosen layers; FineTuneError when none."""
        from napari_unetseg.core.training.finetune import FineTuneError, TrainingPair

        if self.source.value == FROM_BROWSER:
            chosen = self._checked()
            if not chosen:
                raise FineTuneError("nothing to train on: no images of the browsed folder have "
                                    "saved, corrected labels (open a folder in 'Browse folder "
                                    "and export', correct and save some)")
            return list(chosen)
        image, labels = self.image_layer.value, self.labels_layer.value
        if image is None or labels is None:
            raise FineTuneError("nothing to train on: choose an image layer and its Labels "
                                "layer")
        return [TrainingPair(image.name, np.asarray(image.data), np.asarray(labels.data))]

    # ------------------------------------------------------------------ running
    def _segment_widget(self):
        return self.session.segment

    def train(self) -> None:
        """Start fine-tuning in a worker thread."""
        from napari.utils.notifications import show_error

        from napari_unetseg.core.training.finetune import (
            FineTuneError,
            TrainingPair,
            check_pairs,
            fine_tune,
            held_out_if_possible,
            read_pairs,
        )

        if self.busy:
            return
        try:
            sources = self.training_sources()
            if isinstance(sources[0], TrainingPair):  # layers: in memory, checked at once
                sources = check_pairs(sources)
        except (FineTuneError, OSError, ValueError) as exc:
            show_error(str(exc))
            self.status.setText(str(exc))
            return
        names = [s.name if isinstance(s, TrainingPair) else Path(s[0]).name for s in sources]
        base = self.base_model()
        out = self.output_path()
        hold = held_out_if_possible(len(sources), bool(self.hold_out.value))
        kwargs = dict(minutes=float(self.minutes.value),
                      epochs=int(self.epochs.value) or None, lr=float(self.lr.value),
                      hold_out=hold, tune_thresholds=bool(self.tune.value),
                      int8_in_child=True,
                      on_epoch=self.job.tell("epoch"), on_step=self.job.report,
                      cancel=self.job.cancelled, log=self.job.tell("phase"))
        self.plot.clear()
        self.result = None
        self.remaining_button.setEnabled(False)
        self.train_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(f"Training on {len(names) - hold} image(s) from {Path(base).name}"
                            + (f", holding out {names[-1]} to measure the first half"
                               if hold else "") + "…")
        self._started, self._epochs_done = time.perf_counter(), 0
        self._budget = (float(self.minutes.value) * 60, int(self.epochs.value) or None)
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("starting…")
        self.progress_bar.setVisible(True)
        # Python's full garbage collections stop every thread, the UI's too. Building the
        # model makes the training thread run one, which walked all of napari's ~650 000
        # objects for 0.3-0.5 s (gc callbacks in bench_ui_stall.py). Objects alive now are
        # long-lived (modules, functions, layers): frozen, later collections skip them
        # while the run lasts (unfrozen when it ends, when nothing competes with the UI).
        gc.freeze()

        def work():
            # The images are read here, off the UI thread (a folder of large TIFFs takes
            # seconds), as a snapshot: later edits do not change the run.
            pairs = sources if isinstance(sources[0], TrainingPair) else read_pairs(sources)
            return fine_tune(base, pairs, out, **kwargs)

        self.job.start(work, returned=self._on_done, errored=self._on_error,
                       finished=self._on_finished)

    def cancel(self) -> None:
        """Stop at the next step; the best model so far is kept."""
        self.job.cancel()
        self.status.setText("Stopping after this step…")

    @property
    def busy(self) -> bool:
        return self.job.running

    def _fraction(self, done: int = 0, total: int = 1) -> float:
        """The part of the run done: time against the budget, or epochs against theirs."""
        seconds, epochs = self._budget
        elapsed = time.perf_counter() - self._started
        by_time = elapsed / seconds if seconds else 0.0
        by_epochs = ((self._epochs_done + done / max(total, 1)) / epochs) if epochs else 0.0
        return min(1.0, max(by_time, by_epochs))

    def _on_step(self, done: int, total: int) -> None:
        if not self.busy:
            return
        fraction = self._fraction(done, total)
        self.progress_bar.setValue(int(fraction * 1000))
        self.progress_bar.setFormat(
            f"training: %p%   {time_left(fraction, time.perf_counter() - self._started)}")

    def _on_message(self, kind: str, payload) -> None:
        if kind == "epoch":
            self._on_epoch(payload)
        elif kind == "phase":
            self._on_phase(payload)

    def _on_phase(self, text: str) -> None:
        """After training: tuning thresholds, scoring, making the int8 model."""
        if self.busy and text.startswith("now: "):
            self.progress_bar.setValue(1000)
            self.progress_bar.setFormat(text[len("now: "):])

    def _on_epoch(self, line: dict) -> None:
        self._epochs_done = int(line["epoch"])
        score = line.get("mAP_50_95")
        self.plot.add(float(line["loss"]), score)
        text = f"Epoch {line['epoch']}: loss {line['loss']:.3f}"
        if score is not None:
            text += f", held-out mAP {score:.3f}"
        self.status.setText(text)

    def _on_done(self, result: dict) -> None:
        self.result = result
        before, after = result["before"], result["after"]
        text = ("Stopped early; kept the best model so far. " if result["interrupted"]
                else "Done. ") + f"Saved {result['checkpoint']}"
        if before is not None and after is not None:
            text += f". Held-out mAP {before:.3f} before, {after:.3f} after" + (
                " the first half (then it was trained on too)"
                if result.get("trained_on_held_out") else "")
        seg = self._segment_widget()
        if not result["use"]:
            # Do not swap in a model that scores worse on the user's own held-out image; it
            # stays on disk (Browse… in the model panel loads it).
            text += "; it scores lower than the model you started from, which stays in use"
        elif seg is not None:
            seg.model_panel.load(result["checkpoint"])
        else:  # the Segment panel loads it when it opens
            self.session.set_model(result["checkpoint"])
        self.status.setText(text + ".")
        self.remaining_button.setEnabled(self._browser() is not None and result["use"])

    def _on_error(self, exc: Exception) -> None:
        from napari.utils.notifications import show_error

        msg = first_line(exc)
        show_error(f"Training failed: {msg}")
        self.status.setText(f"Failed: {msg}")

    def _on_finished(self) -> None:
        gc.unfreeze()
        self.progress_bar.setVisible(False)
        self.train_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _segment_remaining(self) -> None:
        browser = self._browser()
        if browser is not None:
            browser.segment_remaining()
