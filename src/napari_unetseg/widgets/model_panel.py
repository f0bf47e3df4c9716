"""Model panel: choose a checkpoint and a device; load off the UI thread; remember recents."""

from __future__ import annotations

import sys
from pathlib import Path

from qtpy.QtCore import QSettings, Qt, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QWidget,
)

from napari_unetseg.core.base.choices import DEVICES
from napari_unetseg.core.inference.cache import ModelCache

from .common import compact_combo, first_line

DEFAULT_ITEM = "Default nuclei model (bundled)"
EXPORT_TEXT = "Export for BioImage Model Zoo…"
MAX_RECENT = 6


def settings() -> QSettings:
    """Where the recent checkpoints are remembered between sessions."""
    return QSettings("napari-unetseg", "napari-unetseg")


def recent_checkpoints() -> list[str]:
    value = settings().value("recent_checkpoints", [])
    if isinstance(value, str):
        value = [value]
    return [v for v in (value or []) if isinstance(v, str)]


def remember_checkpoint(path: str) -> None:
    items = [path, *[p for p in recent_checkpoints() if p != path]][:MAX_RECENT]
    settings().setValue("recent_checkpoints", items)


def describe(info: dict) -> str:
    """What a checkpoint is, in a biologist's words, for the panel."""
    prov = info.get("provenance", {})
    val = prov.get("validation") or {}
    base = prov.get("base_model")
    if base:
        name = "the bundled model" if base == "default" else Path(str(base)).name
        n = len(prov.get("images_used") or []) or prov.get("training_images")
        date = str(prov.get("date", ""))[:10]
        lines = [f"Fine-tuned from {name} on {n} of your corrected image(s)"
                 + (f" ({date})." if date else ".")]
    else:
        n = prov.get("training_images")
        data = str(prov.get("training_data") or "").split(",")[0].split(";")[0].split(" (")[0]
        lines = ["Nuclei model" + (f" trained on {n} images" if n else "")
                 + (f" ({data})" if data else "") + "."]
    score, k = val.get("mAP_50_95"), prov.get("validation_images")
    if score is not None:
        lines.append(f"Score on {k or 'its'} held-out image{'s' if k != 1 else ''}: "
                     f"{score:.2f} (mean average precision; 1 is perfect).")
    if info.get("diameter"):
        lines.append(f"Works at nuclei {info['diameter']:g} px across: each image is "
                     "rescaled to that.")
    return "\n".join(lines)


def describe_details(info: dict) -> str:
    """The technical facts of a checkpoint (shown on request)."""
    cfg = info.get("config", {})
    t = info.get("thresholds", {})
    return "\n".join([
        f"File: {info.get('path', '?')}",
        f"Encoder: {cfg.get('encoder', '?')}; outputs: {info.get('targets', '?')}; "
        f"input channels: {cfg.get('in_channels', '?')}",
        "Default thresholds: mask {mask_threshold}, seed {seed_threshold}, min size "
        "{min_size} px".format(**t) if t else "",
        f"Parameters: {info.get('parameters', '?'):,}" if info.get("parameters") else "",
    ]).strip()


class ModelPanel(QGroupBox):
    """Choose and load a model; emits ``model_loaded`` with the ready predictor.

    Loading runs in a worker thread; a model is cached per (checkpoint, device), so choosing
    it again is immediate. A file that fails to load leaves the previous model in place.
    """

    model_loaded = Signal(object)
    load_failed = Signal(str)
    exported = Signal(str)

    def __init__(self, parent: QWidget | None = None, autoload: bool = True,
                 model: str = "default"):
        super().__init__("Model", parent)
        self.predictor = None
        self.info: dict = {}
        self.current: str | None = None
        self._cache = ModelCache()
        self._worker = None
        self._export_worker = None

        self.model_combo = compact_combo(QComboBox())
        self.model_combo.setToolTip("Checkpoint to segment with; recently used ones are listed")
        self.browse_button = QPushButton("Browse…")
        self.browse_button.setToolTip("Choose a checkpoint (.pt) trained with unetseg, or a "
                                      "BioImage Model Zoo package (.zip)")
        self.export_button = QPushButton(EXPORT_TEXT)
        self.export_button.setToolTip("Write the model in use as a bioimage.io package, for "
                                      "the BioImage Model Zoo and the tools that read it")
        self.export_button.setEnabled(False)
        row = QHBoxLayout()
        row.addWidget(self.model_combo, 1)
        row.addWidget(self.browse_button)
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICES)
        self.device_label = QLabel("not loaded")
        self.device_label.setWordWrap(True)
        self.info_label = QLabel("")
        self.info_label.setWordWrap(True)
        self.details_button = QToolButton()
        self.details_button.setText("Details")
        self.details_button.setCheckable(True)
        self.details_button.setToolTip("Show the model's file, architecture and thresholds")
        self.details_label = QLabel("")
        self.details_label.setWordWrap(True)
        self.details_label.setVisible(False)
        self.details_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details_button.toggled.connect(self.details_label.setVisible)

        form = QFormLayout(self)
        form.addRow("Checkpoint:", row)
        form.addRow("Device:", self.device_combo)
        form.addRow("In use:", self.device_label)
        form.addRow(self.info_label)
        form.addRow(self.details_button)
        form.addRow(self.details_label)
        form.addRow(self.export_button)

        self._fill_combo()
        self.model_combo.activated.connect(self._on_combo)
        self.browse_button.clicked.connect(self._browse)
        self.export_button.clicked.connect(self._export)
        self.device_combo.currentTextChanged.connect(lambda _: self._reload())
        if autoload:
            self.load(model)

    # ------------------------------------------------------------------ helpers
    def _fill_combo(self, select: str | None = None) -> None:
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        self.model_combo.addItem(DEFAULT_ITEM, "default")
        for p in recent_checkpoints():
            self.model_combo.addItem(Path(p).name, p)
            self.model_combo.setItemData(self.model_combo.count() - 1, p, 3)  # tooltip role
        target = select or self.current or "default"
        idx = self.model_combo.findData(target)
        self.model_combo.setCurrentIndex(max(idx, 0))
        self.model_combo.blockSignals(False)

    def _on_combo(self, index: int) -> None:
        path = self.model_combo.itemData(index)
        if path and path != self.current:
            self.load(path)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Choose a model", "", "Models (*.pt *.pth *.zip *.yaml);;Checkpoints "
            "(*.pt *.pth);;BioImage Model Zoo packages (*.zip *.yaml);;All files (*)"
        )
        if path:
            self.load(path)

    def _export(self) -> None:
        """Ask where, then write the model in use as a bioimage.io package (in a worker)."""
        from .common import start_worker

        if self.current is None or self._export_worker is not None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Export for BioImage Model Zoo", "", "bioimage.io package (*.zip)")
        if not path:
            return
        if not path.lower().endswith(".zip"):
            path += ".zip"
        self.export_button.setEnabled(False)
        self.export_button.setText("Exporting…")
        self._export_worker = start_worker(
            self, _export_package, self.current, path,
            returned=self._on_exported, errored=self._on_export_failed,
            finished=self._on_export_finished)

    def _on_exported(self, path: str) -> None:
        from napari.utils.notifications import show_info

        show_info(f"Model exported for the BioImage Model Zoo: {path}")
        self.exported.emit(path)

    def _on_export_failed(self, exc: Exception) -> None:
        from napari.utils.notifications import show_error

        show_error(f"Could not export the model: {first_line(exc)}")

    def _on_export_finished(self) -> None:
        self._export_worker = None
        self.export_button.setText(EXPORT_TEXT)
        self.export_button.setEnabled(self.current is not None and "package" not in self.info)

    def _reload(self) -> None:
        if self.current is not None:
            self.load(self.current, force=True)

    @property
    def device(self) -> str:
        return self.device_combo.currentText()

    @property
    def busy(self) -> bool:
        return self._worker is not None

    # ------------------------------------------------------------------ loading
    def load(self, path: str, force: bool = False) -> None:
        """Load a checkpoint (``"default"`` or a path) in the background."""
        from .common import start_worker

        key = (str(path), self.device)
        cached = self._cache.peek(key)
        if cached is not None and not (force and key[0] != self.current):
            self._set_loaded(key[0], *cached)
            return
        self.device_label.setText("loading…")
        self._worker = start_worker(
            self, _load_predictor, key[0], key[1],
            returned=lambda result, k=key: self._on_loaded(k, result),
            errored=lambda exc, p=key[0]: self._on_failed(p, exc),
            finished=self._on_finished,
        )

    def _on_finished(self) -> None:
        self._worker = None

    def _on_loaded(self, key, result) -> None:
        self._cache.put(key, result)
        self._set_loaded(key[0], *result)

    def _set_loaded(self, path: str, predictor, info: dict, devices: list[str]) -> None:
        self.predictor, self.info, self.current = predictor, info, path
        if path != "default":
            remember_checkpoint(path)
        self._fill_combo(select=path)
        model = self.device_combo.model()
        for i, name in enumerate(DEVICES):
            item = model.item(i)
            if item is not None:
                item.setEnabled(name == "auto" or name in devices)
        backend = {"onnxruntime": "ONNX Runtime", "onnxruntime-int8": "ONNX Runtime, int8",
                   "torch": "PyTorch"}.get(predictor.backend, predictor.backend)
        self.device_label.setText(f"{predictor.device} ({backend})")
        self.info_label.setText(describe(info))
        self.details_label.setText(describe_details(info))
        # A package is shared already; exporting is for checkpoints.
        self.export_button.setEnabled("package" not in info and self._export_worker is None)
        self.model_loaded.emit(predictor)

    def _on_failed(self, path: str, exc: Exception) -> None:
        from napari.utils.notifications import show_error

        msg = first_line(exc)
        show_error(f"Could not load model: {msg}")
        self.device_label.setText(str(self.predictor.device) if self.predictor else "not loaded")
        self._fill_combo(select=self.current)
        self.load_failed.emit(msg)


def avoid_llvm_clash() -> None:
    """Keep torch from importing triton in a viewer that runs on Mesa OpenGL.

    Importing triton (pulled in by ``torch._dynamo`` through torchvision, timm and
    torch.onnx) loads its own LLVM, which crashes a process that already holds Mesa's
    libLLVM: any napari window on llvmpipe, Intel or AMD Mesa drivers. This package never
    uses triton (no torch.compile), so where Mesa's LLVM is loaded and triton is not yet,
    triton is marked unavailable and torch proceeds as if it were not installed.
    """
    if "triton" in sys.modules:
        return
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:  # not Linux: no Mesa LLVM clash to avoid
        return
    if "libLLVM" in maps:
        sys.modules["triton"] = None


def _load_predictor(path: str, device: str):
    """Worker: load a checkpoint and prepare it for inference (imports torch lazily)."""
    avoid_llvm_clash()
    from napari_unetseg.core.inference.package import is_package
    from napari_unetseg.core.inference.predictor import Predictor, available_devices
    from napari_unetseg.core.network.checkpoint import load_checkpoint

    if is_package(path):  # a bioimage.io package: read once, by the Predictor
        predictor = Predictor(path, device)
        return predictor, predictor.model.info(), available_devices()
    model, info = load_checkpoint(path)
    return Predictor(model, device, checkpoint=path), info, available_devices()


def _export_package(model: str, out: str) -> str:
    """Worker: write ``model`` as a bioimage.io package."""
    avoid_llvm_clash()
    from napari_unetseg.core.run.zoo import export_bioimageio

    return str(export_bioimageio(model, out))
