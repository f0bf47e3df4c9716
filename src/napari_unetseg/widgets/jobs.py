"""One controller for a panel's background job: start, progress, cancel, results.

The three panels that run long jobs (Segment, Train, Large image) share it, so each rule
holds everywhere: one job at a time per panel; progress and messages travel from the
worker thread to the UI thread as queued signals; cancelling sets a flag the core checks
between tiles, blocks or steps; results and errors that arrive after the panel was closed
are dropped (:func:`.common.start_worker`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from qtpy.QtCore import QObject, Signal

from .common import start_worker


class Job(QObject):
    """The background job of one panel.

    Signals
    -------
    progress(done, total)
        Emitted from the worker thread through :meth:`report` (queued to the UI thread).
    message(kind, payload)
        Anything else the job tells the panel: a training epoch's figures, a phase, the
        path of labels being written.
    """

    progress = Signal(int, int)
    message = Signal(str, object)

    def __init__(self, owner):
        super().__init__()
        self.owner = owner
        self.worker = None
        self._cancel = threading.Event()

    @property
    def running(self) -> bool:
        return self.worker is not None

    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called (core functions take this as ``cancel``)."""
        return self._cancel.is_set()

    def cancel(self) -> None:
        self._cancel.set()

    def report(self, done: int, total: int) -> None:
        """A ``progress(done, total)`` callback for core functions, safe from any thread."""
        self.progress.emit(int(done), int(total))

    def tell(self, kind: str) -> Callable[[object], None]:
        """A callback that sends its argument as ``message(kind, payload)``."""
        return lambda payload: self.message.emit(kind, payload)

    def start(self, func: Callable[[], object], *, returned=None, errored=None,
              finished=None) -> bool:
        """Run ``func()`` in a worker thread; False (nothing started) while one runs.

        ``finished`` runs after ``returned`` or ``errored``, once the job no longer counts as
        running.
        """
        if self.running:
            return False
        self._cancel.clear()

        def done():
            self.worker = None
            if finished is not None:
                finished()

        self.worker = start_worker(self.owner, func, returned=returned, errored=errored,
                                   finished=done)
        return True
