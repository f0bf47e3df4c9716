"""Closing the viewer while a worker runs must not take the process down."""

import subprocess
import sys
import textwrap


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
