"""Screenshot of the plugin at work, for the README: napari at 1366x768 (a laptop screen)
with the panels opened as the Plugins menu opens them (they form one tab group), the
fluorescence sample segmented by the bundled model. Needs a display (xvfb-run).

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/screenshot.py docs/screenshot.png
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ui_stall import wait_for


def main(out: str, model: str = "default") -> None:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_unetseg.widgets.common import dock_of
    from napari_unetseg.widgets.contributions import sample_layers

    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    viewer.window._qt_window.resize(1366, 768)
    (data, meta, _), = sample_layers("fluorescence_nuclei")
    viewer.add_image(data, **meta)
    for name in ("Edit labels", "Browse folder and export", "Train on corrected labels"):
        viewer.window.add_plugin_dock_widget("napari-unetseg", name)
    seg = viewer.window.add_plugin_dock_widget("napari-unetseg", "Segment nuclei (U-Net)")[1]
    if model != "default":
        seg.model_panel.load(model)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    dock_of(seg).raise_()
    wait_for(app, lambda: seg.model_panel.predictor is not None)
    seg.form.show_maps.value = False
    seg.run()
    wait_for(app, lambda: not seg.busy)
    viewer.reset_view()
    for _ in range(50):
        app.processEvents()
        time.sleep(0.02)
    viewer.screenshot(out, canvas_only=False)
    viewer.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
