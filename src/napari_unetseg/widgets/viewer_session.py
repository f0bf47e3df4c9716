"""One session per napari viewer: what the plugin's panels share.

napari hands every dock widget it makes (Plugins menu, ``napari -w``,
``viewer.window.add_plugin_dock_widget``) its own ``PublicOnlyProxy`` of the viewer, so two
panels of one viewer hold two different objects. The session is keyed on the real viewer
behind the proxy: however a panel was opened, it finds the others, the model in use and the
folder being browsed through :meth:`ViewerSession.of`.
"""

from __future__ import annotations

import weakref

from qtpy.QtCore import QObject, Signal

# Roles of the panels a session knows (one panel per role and viewer).
SEGMENT, EDIT, BROWSE, TRAIN, LARGE_IMAGE = "segment", "edit", "browse", "train", "large"

_SESSIONS: dict[int, ViewerSession] = {}


def real_viewer(viewer):
    """The viewer behind napari's plugin proxy (``viewer`` itself when it is not one)."""
    # napari's proxies are wrapt.ObjectProxy objects, whose public ``__wrapped__`` is the
    # object they stand for; a real viewer has no such attribute.
    inner = getattr(viewer, "__wrapped__", None)
    while inner is not None and inner is not viewer:
        viewer, inner = inner, getattr(inner, "__wrapped__", None)
    return viewer


class ViewerSession(QObject):
    """What the panels of one viewer share: each other, and the model in use.

    Emits ``model_changed(path)`` when the Segment panel's model changes (``"default"`` for
    the bundled model).
    """

    model_changed = Signal(str)

    def __init__(self, viewer):
        super().__init__()
        self._viewer = weakref.ref(viewer)
        self._panels: dict[str, weakref.ref] = {}
        #: The checkpoint in use in the Segment panel ("default": the bundled model).
        self.model = "default"

    @classmethod
    def of(cls, viewer) -> ViewerSession:
        """The session of ``viewer`` (a napari viewer or its plugin proxy), made once."""
        real = real_viewer(viewer)
        key = id(real)
        session = _SESSIONS.get(key)
        if session is None or session.viewer is not real:
            session = _SESSIONS[key] = cls(real)
            weakref.finalize(real, _SESSIONS.pop, key, None)
        return session

    @property
    def viewer(self):
        """The real napari viewer (None once it is gone)."""
        return self._viewer()

    # ------------------------------------------------------------------ panels
    def register(self, role: str, panel) -> None:
        """Make ``panel`` the session's panel for ``role`` (the newest one wins).

        Once napari has docked it (right after it is made), the panel joins the tab group
        of the session's other docked panels.
        """
        from qtpy.QtCore import QTimer

        self._panels[role] = ref = weakref.ref(panel)
        QTimer.singleShot(0, lambda: self._tabify(ref()))

    def _tabify(self, panel) -> None:
        from .common import is_alive, tabify_with

        if panel is None or not is_alive(panel):
            return
        others = [self.panel(r) for r in (SEGMENT, BROWSE, EDIT, TRAIN, LARGE_IMAGE)]
        tabify_with(panel, [o for o in others if o is not None and o is not panel])

    def panel(self, role: str):
        """The open panel for ``role``, or None (closed panels are dropped)."""
        from .common import is_alive

        ref = self._panels.get(role)
        panel = ref() if ref is not None else None
        if panel is None or not is_alive(panel):
            self._panels.pop(role, None)
            return None
        return panel

    @property
    def segment(self):
        return self.panel(SEGMENT)

    @property
    def browser(self):
        return self.panel(BROWSE)

    # ------------------------------------------------------------------ model
    def set_model(self, path: str) -> None:
        """Record the checkpoint now in use (the Segment panel calls this)."""
        if path != self.model:
            self.model = path
            self.model_changed.emit(path)


__all__ = ["BROWSE", "EDIT", "LARGE_IMAGE", "SEGMENT", "TRAIN", "ViewerSession",
           "real_viewer"]
