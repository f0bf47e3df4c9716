"""UI responsiveness of the segment widget on a 2048x2048 image, in a real napari viewer.

A 5 ms timer on the UI thread records the gaps between its ticks, by phase: inference (in a
worker thread), the moment the first result appears (napari creates the Labels layer),
dragging a slider, a re-run (the layer is updated in place), and fine-tuning on the result in
the "Train on corrected labels" panel (``--train-epochs``). The longest gap is the
longest the viewer froze. For reference, the time napari itself takes to add a labels layer
of the same size is printed too. Prints JSON. Needs a display (xvfb-run on a server).

    xvfb-run -a python benchmarks/bench_ui_stall.py [--model default]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import test_image


def wait_for(app, cond, timeout: float = 600) -> None:
    """Process Qt events until ``cond()`` holds or ``timeout`` seconds pass."""
    t0 = time.perf_counter()
    while not cond() and time.perf_counter() - t0 < timeout:
        app.processEvents()
        time.sleep(0.002)


def main():
    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_unetseg.widgets.segment import SegmentWidget

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--train-epochs", type=int, default=2,
                    help="then fine-tune on the result in the training panel (0: skip)")
    args = ap.parse_args()
    app = QApplication.instance() or QApplication([])
    viewer = napari.Viewer(show=True)
    widget = SegmentWidget(viewer, autoload=False)
    viewer.window.add_dock_widget(widget)
    widget.model_panel.load(args.model)

    wait_for(app, lambda: widget.model_panel.predictor is not None)
    viewer.add_image(test_image(args.size), name="big")
    last = [time.perf_counter()]
    phase = ["inference"]
    by_phase: dict[str, list[float]] = {}

    def tick():
        now = time.perf_counter()
        if phase[0] == "inference" and widget.labels_layer is not None:
            phase[0] = "first result shown"
        by_phase.setdefault(phase[0], []).append(now - last[0])
        last[0] = now

    def settle(seconds: float = 0.5) -> None:
        t = time.perf_counter()
        wait_for(app, lambda: time.perf_counter() - t > seconds)

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(5)
    t0 = time.perf_counter()
    widget.run()
    wait_for(app, lambda: not widget.busy)
    run_s = time.perf_counter() - t0
    settle()  # the gap in which the result was shown ends with the next tick
    # Drag the seed slider: 20 steps, 20 ms apart, as a hand would; then release.
    phase[0] = "dragging"
    last[0] = time.perf_counter()
    widget.watershed.seed_slider.setSliderDown(True)
    for k in range(20):
        widget.watershed.seed_slider.setValue(0.35 + 0.01 * k)
        t = time.perf_counter()
        while time.perf_counter() - t < 0.02:
            app.processEvents()
    widget.watershed.seed_slider.setSliderDown(False)
    widget.watershed.seed_slider.sliderReleased.emit()
    t = time.perf_counter()
    wait_for(app, lambda: not widget.updating)
    settle_s = time.perf_counter() - t
    settle()
    # Run again: the labels layer is updated in place.
    phase[0] = "re-run"
    last[0] = time.perf_counter()
    widget.run()
    wait_for(app, lambda: not widget.busy)
    settle()
    train_s = None
    if args.train_epochs:
        # Fine-tune on the result in the "Train on corrected labels" panel (worker thread).
        from napari_unetseg.widgets.train import FROM_LAYERS, TrainWidget

        trainer = TrainWidget(viewer)
        viewer.window.add_dock_widget(trainer)
        trainer.source.value = FROM_LAYERS
        trainer.reset_choices()
        trainer.image_layer.value = viewer.layers["big"]
        trainer.labels_layer.value = widget.labels_layer
        trainer.epochs.value = args.train_epochs
        trainer.output.value = str(Path(tempfile.mkdtemp()) / "bench.pt")
        phase[0] = "training"
        last[0] = time.perf_counter()
        t = time.perf_counter()
        trainer.train()
        wait_for(app, lambda: not trainer.busy, timeout=1800)
        train_s = time.perf_counter() - t
        settle()
    timer.stop()
    # Reference: what napari itself takes to add a labels layer of this size (UI thread).
    labels = widget.labels_layer.data.copy()
    t = time.perf_counter()
    viewer.add_labels(labels, name="reference")
    app.processEvents()
    add_ms = (time.perf_counter() - t) * 1e3
    print(json.dumps({
        "image": f"{args.size}x{args.size}",
        "segment_seconds": round(run_s, 1),
        "training_seconds": None if train_s is None else round(train_s, 1),
        "longest_ui_gap_ms": {k: round(max(v) * 1e3, 1) for k, v in by_phase.items()},
        "ui_gaps_over_100ms": {k: sum(g > 0.1 for g in v) for k, v in by_phase.items()},
        "napari_add_labels_layer_ms": round(add_ms, 1),
        "labels_settled_s_after_release": round(settle_s, 2),
        "objects": widget.watershed.count_label.text(),
    }, indent=2))
    viewer.close()


if __name__ == "__main__":
    main()
