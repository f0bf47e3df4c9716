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
