"""Small pieces shared by the dock widgets."""

from __future__ import annotations


def refresh_layer_combo(combo, viewer, layer_type, event=None) -> None:
    """Fill ``combo`` with the names of the viewer's layers of ``layer_type``.

    The current choice is kept when it still exists; otherwise a layer of that type that
    was just added (``event.value``) is chosen, so new images are picked up as they open.
    """
    current = combo.currentText()
    names = [layer.name for layer in viewer.layers if isinstance(layer, layer_type)]
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(names)
    added = getattr(event, "value", None) if event is not None else None
    if current in names:
        combo.setCurrentText(current)
    elif isinstance(added, layer_type):
        combo.setCurrentText(added.name)
    combo.blockSignals(False)


def preload_labels_display() -> None:
    """Import what napari needs to show a first Labels layer (call from a worker thread).

    napari imports pandas and its labels visuals lazily when the first Labels layer is
    added, ~0.3 s on the UI thread; importing them while inference runs moves that off it.
    The labels polygon tool's line visuals then build vispy's dash patterns (~110 ms of
    numpy, cached by vispy after the first time); building them here fills that cache.
    """
    import importlib

    for name in ("pandas", "napari._vispy.layers.labels", "napari._vispy.overlays.labels_polygon"):
        try:
            importlib.import_module(name)
        except ImportError:  # a napari version without that module: nothing to preload
            pass
    try:
        from vispy.visuals.line.dash_atlas import DashAtlas
    except ImportError:
        return
    DashAtlas()
