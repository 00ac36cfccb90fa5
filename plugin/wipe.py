"""Before/after view of one frame: a wipe (drag the line) or the two side by side.

It shows display PNGs that ``retake preview`` made (8-bit, already through the OCIO
view), so nothing here converts colour.
"""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget


class WipeView(QWidget):
    """``set_images(before, after)`` then paint; ``mode`` is "wipe" or "side by side"."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.before = QImage()
        self.after = QImage()
        self.mode = "wipe"
        self.position = 0.5  # the wipe line, 0 (all after) .. 1 (all before)
        self.caption = "no preview yet"
        self.setMinimumSize(320, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_images(self, before: str | None, after: str | None, caption: str = "") -> None:
        self.before = QImage(before) if before else QImage()
        self.after = QImage(after) if after else QImage()
        self.caption = caption
        self.update()

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        self.update()

    def _fit(self, image: QImage, area: QRectF) -> QRectF:
        if image.isNull():
            return area
        scale = min(area.width() / image.width(), area.height() / image.height())
        w, h = image.width() * scale, image.height() * scale
        return QRectF(area.x() + (area.width() - w) / 2, area.y() + (area.height() - h) / 2, w, h)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(24, 24, 24))
        area = QRectF(self.rect()).adjusted(4, 4, -4, -22)
        painter.setPen(QColor(200, 200, 200))
        if self.before.isNull():
            painter.drawText(area, Qt.AlignmentFlag.AlignCenter, self.caption or "no preview yet")
            return
        if self.mode == "side by side" and not self.after.isNull():
            half = QRectF(area.x(), area.y(), area.width() / 2 - 2, area.height())
            painter.drawImage(self._fit(self.before, half), self.before)
            right = half.translated(area.width() / 2 + 2, 0)
            painter.drawImage(self._fit(self.after, right), self.after)
            labels = ((half, "before"), (right, "after"))
        else:
            target = self._fit(self.before, area)
            painter.drawImage(target, self.before)
            labels = ((target, "before"),)
            if not self.after.isNull():
                split = target.x() + target.width() * self.position
                clip = QRectF(split, target.y(), target.right() - split, target.height())
                painter.save()
                painter.setClipRect(clip)
                painter.drawImage(target, self.after)
                painter.restore()
                painter.setPen(QPen(QColor(255, 200, 60), 2))
                painter.drawLine(QPointF(split, target.top()), QPointF(split, target.bottom()))
                labels = ((QRectF(target.x(), target.y(), split - target.x(), target.height()), "before"),
                          (clip, "after"))
        for rect, text in labels:
            # A dark tag behind the label keeps it legible over bright pixels.
            tag = painter.boundingRect(rect.adjusted(6, 4, -6, -4), Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft,
                                       text).adjusted(-3, -1, 3, 1)
            painter.fillRect(tag, QColor(0, 0, 0, 160))
            painter.setPen(QColor(240, 240, 240))
            painter.drawText(tag, Qt.AlignmentFlag.AlignCenter, text)
        painter.setPen(QColor(230, 230, 230))
        painter.drawText(QRectF(self.rect()).adjusted(6, 0, -6, -3),
                         Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignLeft, self.caption)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        if self.mode == "wipe" and not self.before.isNull():
            target = self._fit(self.before, QRectF(self.rect()).adjusted(4, 4, -4, -22))
            self.position = min(1.0, max(0.0, (event.position().x() - target.x()) / max(1.0, target.width())))
            self.update()

    mousePressEvent = mouseMoveEvent  # noqa: N815 - a click moves the line too
