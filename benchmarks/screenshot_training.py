"""Screenshot of the "Train on corrected labels" panel after a short run, for the README.

The three sample images with their ground truth saved as "corrected" labels in a folder,
browsed; the panel fine-tunes the bundled model for a few epochs (one image held out).
napari at 1366x768, the panels opened as the Plugins menu opens them. Needs a display
(xvfb-run).

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/screenshot_training.py \\
        docs/train_panel.png
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ui_stall import wait_for

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"


def main(out: str, epochs: str = "4") -> None:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_unetseg.widgets.common import dock_of

    folder = Path(tempfile.mkdtemp()) / "my_images"
    (folder / "labels").mkdir(parents=True)
    for name in ("brightfield_nuclei", "fluorescence_nuclei", "tissue_stained"):
        shutil.copy(SAMPLES / f"{name}.png", folder)
        shutil.copy(SAMPLES / "labels" / f"{name}.tif", folder / "labels")
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    viewer.window._qt_window.resize(1366, 768)

    def panel(name):
        return viewer.window.add_plugin_dock_widget("napari-unetseg", name)[1]

    seg = panel("Segment nuclei (U-Net)")
    browse = panel("Browse folder and export")
    browse.auto_check.setChecked(False)
    train = panel("Train on corrected labels")
    wait_for(app, lambda: seg.model_panel.predictor is not None)
    browse.open_folder(folder)
    wait_for(app, lambda: not browse.busy)
    train.refresh()
    train.epochs.value = int(epochs)
    train.train()
    wait_for(app, lambda: not train.busy, timeout=1800)
    dock_of(train).raise_()
    train.scroll_area.ensureWidgetVisible(train.status)
    for _ in range(50):
        app.processEvents()
        time.sleep(0.02)
    viewer.screenshot(out, canvas_only=False)
    print(train.status.text())
    viewer.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
