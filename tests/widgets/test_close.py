"""Closing the viewer while a worker runs must not take the process down."""

import subprocess
import sys
import textwrap
import time

from tests.conftest import SAMPLES


def test_closing_the_viewer_while_the_model_loads_does_not_abort(tmp_path):
    # A separate process: the failure mode is Qt aborting the whole interpreter, when a
    # worker finishes after its panel was deleted.
    script = textwrap.dedent(f"""
        import numpy as np, napari
        v = napari.Viewer(show=False)
        v.add_image(np.random.rand(64, 64), name="img")
        for name in ("Segment nuclei (U-Net)", "Edit labels", "Browse folder and export"):
            v.window.add_plugin_dock_widget("napari-unetseg", name)
        layer = v.add_labels(np.zeros((64, 64), np.uint8), name="lab")
        layer.save({str(tmp_path / "x.tif")!r})
        v.close()
        print("closed OK")
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "closed OK" in run.stdout
    assert "has been deleted" not in run.stderr


def test_pressing_next_quickly_while_images_segment_does_not_crash(tmp_path):
    # The browser auto-segments; Next is pressed before each result arrives. Results for
    # images already closed used to be turned into layers and crashed Mesa (segfault in
    # glDrawArrays, 6 of 6 runs); they are dropped now. A separate process: a segfault
    # would take the test runner down.
    script = textwrap.dedent(f"""
        import shutil, time
        from pathlib import Path
        import napari
        from qtpy.QtWidgets import QApplication
        from napari_unetseg.widgets.browse import BrowseWidget
        from napari_unetseg.widgets.segment import SegmentWidget
        folder = Path({str(tmp_path)!r}) / "imgs"
        folder.mkdir()
        for i in range(4):
            for n in ("fluorescence_nuclei", "tissue_stained", "brightfield_nuclei"):
                shutil.copy(Path({str(SAMPLES)!r}) / f"{{n}}.png", folder / f"{{i}}_{{n}}.png")
        v = napari.Viewer(show=True)
        app = QApplication.instance()
        seg = SegmentWidget(v)
        v.window.add_dock_widget(seg)
        b = BrowseWidget(v)
        v.window.add_dock_widget(b)
        t = time.time()
        while seg.model_panel.predictor is None and time.time() - t < 120:
            app.processEvents(); time.sleep(0.01)
        b.open_folder(folder)
        for k in range(11):
            for _ in range(5):
                app.processEvents(); time.sleep(0.005)
            b.next()
        t = time.time()
        # The browser reads each image in a worker, then the Segment panel segments it.
        while (seg.busy or b.busy) and time.time() - t < 120:
            app.processEvents(); time.sleep(0.01)
        for _ in range(50):
            app.processEvents(); time.sleep(0.01)
        print("survived", b.index)
        v.close()
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "survived 11" in run.stdout


def test_closing_the_viewer_during_training_stops_it_cleanly(tmp_path, tiny_model_path):
    script = textwrap.dedent(f"""
        import time
        import napari
        from qtpy.QtWidgets import QApplication
        from napari_unetseg.widgets.contributions import sample_layers
        from napari_unetseg.widgets.segment import SegmentWidget
        from napari_unetseg.widgets.train import FROM_LAYERS, TrainWidget
        v = napari.Viewer(show=False)
        app = QApplication.instance()
        (img, meta, _), (lab, _, _) = sample_layers("tissue_stained", with_labels=True)
        v.add_image(img, **meta)
        v.add_labels(lab, name="corrected")
        seg = SegmentWidget(v, autoload=False)
        v.window.add_dock_widget(seg)
        seg.model_panel.load({str(tiny_model_path)!r})
        t = time.time()
        while seg.model_panel.predictor is None and time.time() - t < 60:
            app.processEvents(); time.sleep(0.01)
        tr = TrainWidget(v)
        v.window.add_dock_widget(tr)
        tr.source.value = FROM_LAYERS
        tr.reset_choices()
        tr.minutes.value = 30
        tr.output.value = {str(tmp_path / "m.pt")!r}
        tr.train()
        t = time.time()
        while not tr.plot.loss and time.time() - t < 120:
            app.processEvents(); time.sleep(0.01)
        v.close()
        print("closed OK")
    """)
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "closed OK" in run.stdout
    # It stopped at the next step rather than training for its 30 minutes.
    assert time.perf_counter() - t0 < 300
