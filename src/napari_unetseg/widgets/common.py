"""Small pieces shared by the dock widgets."""

from __future__ import annotations

from .layer_keys import HIGHLIGHT_KEY

#: Panels must fit beside the canvas on a 1366 px laptop screen.
MAX_PANEL_WIDTH = 420


def scroll_layout(panel):
    """The layout to fill for ``panel``: inside a vertical scroll area, so that a panel
    never makes the viewer's window taller than the screen (its controls scroll instead).
    """
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QFrame, QScrollArea, QVBoxLayout, QWidget

    class VerticalScroll(QScrollArea):
        """Scrolls vertically only: as wide as its content needs (the dock keeps every
        control whole), as short as the screen allows."""

        def minimumSizeHint(self):
            hint = super().minimumSizeHint()
            inner = self.widget()
            if inner is not None:
                hint.setWidth(inner.minimumSizeHint().width()
                              + self.verticalScrollBar().sizeHint().width()
                              + 2 * self.frameWidth())
            return hint

    outer = QVBoxLayout(panel)
    outer.setContentsMargins(0, 0, 0, 0)
    area = VerticalScroll()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    inner = QWidget()
    area.setWidget(inner)
    outer.addWidget(area)
    panel.scroll_area = area
    return QVBoxLayout(inner)


def dock_of(widget):
    """The QDockWidget holding ``widget`` (None while it is not docked)."""
    from qtpy.QtWidgets import QDockWidget

    parent = widget.parent()
    while parent is not None and not isinstance(parent, QDockWidget):
        parent = parent.parent()
    return parent


def tabify_with(widget, others) -> bool:
    """Put ``widget``'s dock in one tab group with the first docked of ``others`` (same
    window and side), and show it. napari stacks plugin docks one above the other, which
    leaves each a sliver of a laptop screen; tabbed, each panel gets the full height.
    Returns whether it was tabified.
    """
    mine = dock_of(widget)
    if mine is None or mine.isFloating():
        return False
    window = mine.parent()
    for other in others:
        theirs = dock_of(other) if other is not None and other is not widget else None
        if (theirs is not None and theirs is not mine and theirs.parent() is window
                and not theirs.isFloating()
                and window.dockWidgetArea(theirs) == window.dockWidgetArea(mine)):
            if mine not in window.tabifiedDockWidgets(theirs):
                window.tabifyDockWidget(theirs, mine)
            mine.show()
            mine.raise_()
            return True
    return False


def compact_combo(combo, chars: int = 16):
    """Let a combo box shrink to ``chars`` characters: long layer or file names otherwise
    widen the whole dock (the full name stays in the list and the tooltip)."""
    from qtpy.QtWidgets import QComboBox

    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(chars)
    return combo


def auto_number_box(maximum: float, suffix: str, tip: str):
    """A number box whose 0 reads "auto" (Qt's special-value text), for optional values."""
    from qtpy.QtWidgets import QDoubleSpinBox

    box = QDoubleSpinBox()
    box.setRange(0.0, maximum)
    box.setDecimals(1)
    box.setSuffix(suffix)
    box.setSpecialValueText("auto")
    box.setToolTip(tip)
    return box


def layer_picker(viewer, layer_type, label: str, tooltip: str):
    """A magicgui layer picker (``create_widget(annotation=layer_type)``) for ``viewer``.

    Its choices are read from ``viewer`` itself rather than from the widget's dock ancestor
    (napari's default), so that it is right before the panel is docked and with several
    viewers open. The owner keeps it current with :func:`follow_layers`.
    """
    from magicgui.widgets import create_widget

    picker = create_widget(
        annotation=layer_type, label=label,
        options={"tooltip": tooltip, "nullable": False,
                 "choices": lambda _w: [x for x in viewer.layers if isinstance(x, layer_type)
                                        and not is_helper_layer(x)]})
    compact_combo(picker.native)
    return picker


def follow_layers(picker, event=None) -> None:
    """Refresh a :func:`layer_picker` after a layer-list event.

    The current choice is kept while it exists; a layer of the picker's type that was just
    added (``event.value`` of an ``inserted`` event) becomes the choice, so an image that
    the user (or the folder browser) opens is the one segmented next.
    """
    picker.reset_choices()
    added = getattr(event, "value", None)
    if (getattr(event, "type", None) == "inserted" and isinstance(added, picker.annotation)
            and not is_helper_layer(added)):
        picker.value = added


def is_helper_layer(layer) -> bool:
    """A layer a panel shows for the user's eyes only (the selection outline)."""
    return bool(getattr(layer, "metadata", {}).get(HIGHLIGHT_KEY))


def connect_layer_events(viewer, callback) -> None:
    """Call ``callback(event)`` when layers are added, removed, moved or renamed."""
    events = viewer.layers.events
    for name in ("inserted", "removed", "moved", "renamed"):
        emitter = getattr(events, name, None)
        if emitter is not None:
            emitter.connect(callback)


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


# Workers still running, held here so that their Qt signal objects outlive the widget that
# started them: a worker whose signals were garbage-collected with a closed widget emits
# into a deleted object from its thread, and Qt aborts the whole process.
_RUNNING: set = set()
_EXIT_WAIT_MS = 30_000


def first_line(exc: BaseException) -> str:
    """What to show of an exception: its message's first line, or its type's name."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def is_alive(widget) -> bool:
    """Whether the C++ side of a Qt object still exists (closed widgets are deleted)."""
    try:
        widget.objectName()
    except RuntimeError:
        return False
    return True


def _guarded(owner, callback):
    def call(*args):
        if is_alive(owner):
            callback(*args)

    return call


def _wait_for_workers() -> None:
    """At interpreter exit: let running workers end before Python tears down under them."""
    from qtpy.QtCore import QThreadPool

    if _RUNNING:
        QThreadPool.globalInstance().waitForDone(_EXIT_WAIT_MS)


def start_worker(owner, func, *args, returned=None, errored=None, finished=None,
                 yielded=None):
    """Run ``func(*args)`` in a napari worker thread on behalf of the widget ``owner``.

    Callbacks run on the UI thread, and only while ``owner`` exists: a result that arrives
    after its panel or the viewer was closed is dropped. The worker itself is kept alive
    until it ends (see :data:`_RUNNING`). Errors go to ``errored`` (never to napari's
    global handler, which would report them twice).
    """
    import atexit

    from napari.qt.threading import create_worker

    atexit.unregister(_wait_for_workers)  # registered once, however many workers start
    atexit.register(_wait_for_workers)
    worker = create_worker(func, *args, _start_thread=False, _ignore_errors=True)
    for name, callback in (("returned", returned), ("errored", errored),
                           ("yielded", yielded), ("finished", finished)):
        if callback is not None:
            getattr(worker, name).connect(_guarded(owner, callback))
    _RUNNING.add(worker)
    worker.finished.connect(lambda: _RUNNING.discard(worker))
    worker.start()
    return worker
