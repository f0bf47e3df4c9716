"""The Train panel's live progress: a per-epoch plot of loss and held-out mAP, and the
time-left text of its progress bar. Plain Qt painting: magicgui has no plot widget and a
plotting library would be a heavy dependency for two small curves.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QPointF
from qtpy.QtGui import QColor, QPainter, QPen
from qtpy.QtWidgets import QWidget

LOSS_COLOUR, SCORE_COLOUR = (255, 160, 60), (90, 170, 255)


class CurvePlot(QWidget):
    """Per epoch: training loss (left axis) and held-out mAP (right axis), with a legend."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.loss: list[float] = []
        self.score: list[float] = []
        self.setMinimumHeight(130)
        self.setToolTip("Per epoch: training loss (orange, left axis) and the held-out "
                        "image's mAP (blue, right axis; higher is better), measured while "
                        "it is held out: the first half of the run")

    def add(self, loss: float, score: float | None) -> None:
        self.loss.append(loss)
        self.score.append(np.nan if score is None else score)
        self.update()

    def clear(self) -> None:
        self.loss, self.score = [], []
        self.update()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(38, 41, 48))
        left, right, top, bottom = 40, 40, 20, 22
        w, h = self.width() - left - right, self.height() - top - bottom
        grey = QColor(170, 170, 170)
        p.setPen(QPen(grey, 1))
        p.drawRect(left, top, w, h)
        n = max(len(self.loss), 1)
        p.drawText(left, self.height() - 6, "1")
        p.drawText(left + w - 12, self.height() - 6, str(n))
        p.drawText(left + w // 2 - 14, self.height() - 6, "epoch")
        self._legend(p, left)
        for values, colour, side in ((self.loss, LOSS_COLOUR, "left"),
                                     (self.score, SCORE_COLOUR, "right")):
            self._curve(p, values, QColor(*colour), side, (left, top, w, h))
        p.end()

    def _legend(self, p, x: int) -> None:
        for label, colour in (("loss", LOSS_COLOUR), ("held-out mAP", SCORE_COLOUR)):
            p.setPen(QPen(QColor(*colour), 3))
            p.drawLine(x, 10, x + 14, 10)
            p.setPen(QPen(QColor(220, 220, 220), 1))
            p.drawText(x + 18, 14, label)
            x += 24 + p.fontMetrics().horizontalAdvance(label) + 12

    def _curve(self, p, values, colour, side: str, box) -> None:
        left, top, w, h = box
        v = np.asarray(values, float)
        ok = np.isfinite(v)
        if not ok.any():
            return
        lo, hi = float(v[ok].min()), float(v[ok].max())
        if side == "right":  # a score: 0 at the bottom, so that a rise reads as a rise
            lo, hi = 0.0, max(hi, 0.05)
        span = hi - lo or 1.0
        p.setPen(QPen(colour, 1))
        x_text = 2 if side == "left" else left + w + 3
        p.drawText(x_text, top + 10, f"{hi:.2f}")
        p.drawText(x_text, top + h, f"{lo:.2f}")
        n = max(len(v) - 1, 1)
        pts = [QPointF(left + w * (i / n if len(v) > 1 else 0.5),
                       top + h - h * (x - lo) / span) for i, x in enumerate(v) if np.isfinite(x)]
        p.setPen(QPen(colour, 2))
        for a, b in zip(pts, pts[1:]):
            p.drawLine(a, b)
        for a in pts:
            p.drawEllipse(a, 2.5, 2.5)


def time_left(fraction: float, elapsed: float) -> str:
    """'about 2 min left' from the fraction of a run done and the seconds it took."""
    if fraction <= 0.01:
        return ""
    left = elapsed * (1 - fraction) / fraction
    return (f"about {left / 60:.0f} min left" if left >= 90 else
            f"about {max(left, 1):.0f} s left")
