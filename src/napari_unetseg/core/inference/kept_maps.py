"""Maps kept from the diameter estimate for the prediction that repeats it (issue 29)."""

from __future__ import annotations

import threading
import zlib

import numpy as np

from ..base.normalize import PlaneScaling


class KeptMaps:
    """Maps of one plane, handed once to the next prediction of the same pixels.

    The diameter estimate's first pass predicts a plane that fits its region at the scale the
    final prediction then often uses; keeping those maps saves a whole prediction (issue 29).
    The pixels are compared by checksum, with shape, dtype and settings, so a different plane
    never matches. The intensity scaling is kept too: a prediction that would compute the
    plane's own scaling takes the kept one instead of computing it again. One entry (a few
    MB); the lock lets panels and Dask threads share a Predictor.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._entry: tuple | None = None

    @staticmethod
    def _checksum(plane: np.ndarray) -> int:
        # CRC-32 reads a 1024² RGBA plane in ~1 ms (a cryptographic digest takes 5x longer);
        # the data is the user's own, so only accidental collisions matter.
        return zlib.crc32(np.ascontiguousarray(plane).data)

    def keep(self, plane, settings: tuple, scaling: PlaneScaling, own_scaling: bool,
             maps: np.ndarray) -> None:
        entry = ((plane.shape, plane.dtype.str, *settings), self._checksum(plane), scaling,
                 own_scaling, maps)
        with self._lock:
            self._entry = entry

    def clear(self) -> None:
        with self._lock:
            self._entry = None

    def take(self, plane, settings: tuple, scaling: PlaneScaling | None):
        """(maps, scaling) kept for this plane and these settings, or None.

        ``scaling`` None stands for the plane's own scaling.
        """
        with self._lock:
            entry = self._entry
            if entry is None or entry[0] != (plane.shape, plane.dtype.str, *settings):
                return None
            if not (entry[3] if scaling is None else scaling == entry[2]):
                return None
            if entry[1] != self._checksum(plane):
                return None
            self._entry = None
        return entry[4], entry[2]
