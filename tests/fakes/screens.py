"""Qt for the host tests: one offscreen QApplication, waiting on the event loop, screenshots.

Screenshots go to ``$RETAKE_SCREENSHOTS`` or ``tests/_artifacts/screenshots/`` (ignored by git).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from PySide6.QtWidgets import QApplication, QWidget

from tests.fakes.scenes import REPO

SCREENSHOTS = Path(os.environ.get("RETAKE_SCREENSHOTS") or REPO / "tests" / "_artifacts" / "screenshots")


def qt_app() -> QApplication:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    return QApplication.instance() or QApplication([])  # type: ignore[return-value]


def wait_for(condition: Callable[[], bool], timeout: float = 120.0, what: str = "the panel") -> None:
    """Run the Qt event loop until ``condition()`` holds (signals from worker threads arrive this way)."""
    app = qt_app()
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        app.processEvents()
        time.sleep(0.01)
    app.processEvents()


def screenshot(widget: QWidget, name: str) -> Path:
    """Render ``widget`` offscreen to ``SCREENSHOTS/name.png``; returns the file."""
    qt_app().processEvents()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if not widget.grab().save(str(path)):
        raise AssertionError(f"could not save the screenshot {path}")
    return path


def dispose(widget: QWidget) -> None:
    """Close and delete ``widget`` now (a panel left to the garbage collector can outlive the
    QApplication at interpreter exit, which PySide reports as a malformed program)."""
    from PySide6.QtCore import QCoreApplication, QEvent

    widget.close()
    widget.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
