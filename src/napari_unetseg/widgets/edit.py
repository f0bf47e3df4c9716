"""Edit widget: merge, split, delete, remove small, fill holes, relabel — each one undo step.

Painting, filling and erasing stay napari's own tools; this panel adds what they lack. The
operations are core.editing functions; the widget picks objects, applies the result to the
layer with ``data_setitem`` (so napari records it as one undoable edit) and nothing else.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import (
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QWidget,
)

from .common import connect_layer_events, follow_layers, layer_picker, scroll_layout
from .layer_keys import AXES_KEY, HIGHLIGHT_KEY, PROVENANCE_KEY, STATE_KEY
from .viewer_session import EDIT, ViewerSession, real_viewer


class EditWidget(QWidget):
    """Operations on the chosen Labels layer, for objects picked with the mouse."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer = real_viewer(napari_viewer)
        self.session = ViewerSession.of(napari_viewer)
        self.session.register(EDIT, self)
        self.selected: list[int] = []
        self._hooked: set[int] = set()
        self._highlight_layer = None

        from napari.layers import Labels

        self.layer_picker = layer_picker(napari_viewer, Labels, "Labels", "Labels layer to edit")
        self.pick_button = QPushButton("Pick objects")
        self.pick_button.setCheckable(True)
        self.pick_button.setToolTip("While on, click objects in the viewer to (de)select them")
        self.clear_button = QPushButton("Clear")
        self.selection_label = QLabel("Selected: none")
        self.selection_label.setWordWrap(True)
        pick_row = QHBoxLayout()
        pick_row.addWidget(self.pick_button, 1)
        pick_row.addWidget(self.clear_button)

        ops = QGroupBox("Selected objects")
        self.merge_button = QPushButton("Merge")
        self.merge_button.setToolTip("Merge the selected objects into one")
        self.split_button = QPushButton("Split")
        self.split_button.setToolTip("Split each selected object in two at its two strongest "
                                     "cores (model maps, or shape when there are none)")
        self.delete_button = QPushButton("Delete")
        grid = QGridLayout(ops)
        grid.addWidget(self.merge_button, 0, 0)
        grid.addWidget(self.split_button, 0, 1)
        grid.addWidget(self.delete_button, 0, 2)

        whole = QGroupBox("Whole layer")
        self.min_size = QSpinBox()
        self.min_size.setRange(1, 100_000)
        self.min_size.setValue(20)
        self.min_size.setSuffix(" px")
        self.remove_small_button = QPushButton("Remove smaller than")
        self.fill_button = QPushButton("Fill holes")
        self.relabel_button = QPushButton("Relabel 1..N")
        wl = QGridLayout(whole)
        wl.addWidget(self.remove_small_button, 0, 0)
        wl.addWidget(self.min_size, 0, 1)
        wl.addWidget(self.fill_button, 1, 0)
        wl.addWidget(self.relabel_button, 1, 1)

        form = QFormLayout()
        form.addRow("Labels:", self.layer_picker.native)
        form.addRow(pick_row)
        form.addRow(self.selection_label)
        self.status_label = QLabel("Undo with Ctrl+Z in the viewer.")
        self.status_label.setWordWrap(True)
        layout = scroll_layout(self)
        layout.addLayout(form)
        layout.addWidget(ops)
        layout.addWidget(whole)
        layout.addWidget(self.status_label)
        layout.addStretch(1)

        self.clear_button.clicked.connect(self.clear_selection)
        self.pick_button.toggled.connect(self._on_pick_toggled)
        self.merge_button.clicked.connect(self.merge)
        self.split_button.clicked.connect(self.split)
        self.delete_button.clicked.connect(self.delete)
        self.remove_small_button.clicked.connect(self.remove_small)
        self.fill_button.clicked.connect(self.fill)
        self.relabel_button.clicked.connect(self.relabel)
        self.layer_picker.changed.connect(lambda _: self.clear_selection())
        connect_layer_events(napari_viewer, self._refresh_layers)
        self._refresh_layers()

    # ------------------------------------------------------------------ layers & picking
    def _refresh_layers(self, event=None) -> None:
        from napari.layers import Labels

        follow_layers(self.layer_picker, event)
        for lyr in self.viewer.layers:
            if isinstance(lyr, Labels) and id(lyr) not in self._hooked:
                lyr.mouse_drag_callbacks.append(self._on_click)
                self._hooked.add(id(lyr))

    @property
    def layer(self):
        layer = self.layer_picker.value
        return layer if layer is not None and layer in self.viewer.layers else None

    def _on_pick_toggled(self, on: bool) -> None:
        if on and self.layer is not None:
            self.layer.mode = "pan_zoom"  # clicks select instead of painting
            self.viewer.layers.selection.active = self.layer

    def _on_click(self, layer, event) -> None:
        if not self.pick_button.isChecked() or layer is not self.layer:
            return
        value = layer.get_value(event.position, world=True)
        if value:
            self.toggle(int(value))

    def toggle(self, label_id: int) -> None:
        """Add an object to the selection, or remove it if it is selected."""
        if label_id in self.selected:
            self.selected.remove(label_id)
        elif label_id > 0:
            self.selected.append(label_id)
        self._show_selection()

    def clear_selection(self) -> None:
        self.selected = []
        self._show_selection()

    def _show_selection(self) -> None:
        text = ", ".join(map(str, self.selected)) if self.selected else "none"
        self.selection_label.setText(f"Selected: {text}")
        self._highlight()

    def _highlight(self) -> None:
        """Outline the selected objects in the canvas (a layer of its own, not editable)."""
        layer = self.layer
        old = self._highlight_layer
        if old is not None and (old not in self.viewer.layers or layer is None
                                or not self.selected):
            if old in self.viewer.layers:
                self.viewer.layers.remove(old)
            self._highlight_layer = old = None
        if layer is None or not self.selected:
            return
        mask = np.isin(np.asarray(layer.data), self.selected).astype(np.uint8)
        if old is None:
            from napari.utils.colormaps import DirectLabelColormap

            active = self.viewer.layers.selection.active
            old = self._highlight_layer = self.viewer.add_labels(
                mask, name=f"{layer.name} selection", opacity=1.0, scale=layer.scale,
                translate=layer.translate, metadata={HIGHLIGHT_KEY: True},
                colormap=DirectLabelColormap(color_dict={None: "transparent", 1: "yellow"}))
            old.contour = 2
            old.editable = False
            if active is not None:  # clicks keep going to the layer being edited
                self.viewer.layers.selection.active = active
        else:
            old.data = mask

    # ------------------------------------------------------------------ applying
    def _apply(self, fn, what: str) -> bool:
        from napari.utils.notifications import show_error

        layer = self.layer
        if layer is None:
            show_error("Choose a Labels layer to edit")
            return False
        old = np.asarray(layer.data)
        try:
            new = fn(old)
        except ValueError as exc:
            show_error(str(exc))
            return False
        changed = new != old
        n = int(changed.sum())
        if n == 0:
            self.status_label.setText(f"{what}: nothing to change.")
            return True
        if new.dtype.itemsize > old.dtype.itemsize:
            layer.data = new  # more ids than the layer's dtype holds: not undoable
        else:
            layer.data_setitem(np.nonzero(changed), new[changed])
        self.status_label.setText(f"{what}: {n} pixels changed (Ctrl+Z undoes).")
        self._highlight()
        return True

    def _need_selection(self, k: int) -> bool:
        from napari.utils.notifications import show_error

        if len(self.selected) < k:
            show_error(f"Select {'at least two objects' if k > 1 else 'an object'} first "
                       "(Pick objects, then click them)")
            return False
        return True

    def merge(self) -> None:
        from napari_unetseg.core.instances.editing import merge_labels

        if self._need_selection(2) and self._apply(
            lambda a: merge_labels(a, self.selected), "Merge"
        ):
            self.selected = self.selected[:1]
            self._show_selection()

    def delete(self) -> None:
        from napari_unetseg.core.instances.editing import delete_labels

        if self._need_selection(1) and self._apply(
            lambda a: delete_labels(a, self.selected), "Delete"
        ):
            self.clear_selection()

    def split(self) -> None:
        from napari_unetseg.core.instances.editing import split_object

        if not self._need_selection(1):
            return
        state = self.layer.metadata.get(STATE_KEY)
        # Ids are 3D objects when the segment panel linked them through Z, or when the file
        # read back says so (its provenance records the mode).
        provenance = self.layer.metadata.get(PROVENANCE_KEY) or {}
        mode = state.stack_mode if state is not None else provenance.get("mode", "2d")
        through_z = mode != "2d" and "Z" in (self.layer.metadata.get(AXES_KEY) or "ZYX")

        def seed_map_of(plane: int):
            return None if state is None else state.stack.seed_map(plane)

        def run(a):
            for label_id in self.selected:
                a = split_object(a, label_id, seed_map_of, through_z=through_z)
            return a

        if self._apply(run, "Split"):
            self.clear_selection()

    def remove_small(self) -> None:
        from napari_unetseg.core.instances.editing import remove_small_objects

        size = self.min_size.value()
        self._apply(lambda a: remove_small_objects(a, size), f"Remove < {size} px")

    def fill(self) -> None:
        from napari_unetseg.core.instances.editing import fill_holes

        self._apply(fill_holes, "Fill holes")

    def relabel(self) -> None:
        from napari_unetseg.core.instances.editing import relabel_sequential

        self._apply(relabel_sequential, "Relabel")
