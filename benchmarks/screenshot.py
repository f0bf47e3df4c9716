"""Screenshot of the plugin at work, for the README: napari with the three panels docked,
the fluorescence sample segmented by the bundled model. Needs a display (xvfb-run).

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

    from napari_unetseg.widgets.browse import BrowseWidget
    from napari_unetseg.widgets.contributions import sample_layers
    from napari_unetseg.widgets.edit import EditWidget
    from napari_unetseg.widgets.segment import SegmentWidget

    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    viewer.window._qt_window.resize(1500, 950)
    (data, meta, _), = sample_layers("fluorescence_nuclei")
    viewer.add_image(data, **meta)
    seg = SegmentWidget(viewer, autoload=False)
    # The last tabified dock is the one shown.
    viewer.window.add_dock_widget(EditWidget(viewer), name="Edit labels")
    viewer.window.add_dock_widget(BrowseWidget(viewer), name="Browse folder and export",
                                  tabify=True)
    viewer.window.add_dock_widget(seg, name="Segment nuclei (U-Net)", tabify=True)
    seg.model_panel.load(model)

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
