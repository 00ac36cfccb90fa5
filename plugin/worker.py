"""The engine off the UI thread, for the Qt panel.

``RenderWorker`` wraps an ``EngineProcess`` (``retake run --progress json``): progress
events arrive on a reader thread and are re-emitted as a Qt signal, which Qt queues to
the panel's (main) thread. Cancel sends SIGTERM; the engine stops before its next
frame, so a cancel is honoured within one frame and leaves only whole frames.
``PreviewWorker`` runs ``retake preview`` the same way, off the UI thread.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal

from plugin.engine_process import EngineProcess, run_preview, run_track_faces
from plugin.hosts.base import HostError


class RenderWorker(QObject):
    """One render. ``event`` carries each progress event; ``finished`` the last one
    (``done`` or ``error``, with ``cancelled`` added)."""

    event = Signal(dict)
    finished = Signal(dict)

    def __init__(self, job_path: str, retake: list[str] | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.job_path = job_path
        self.retake = retake
        self.process: EngineProcess | None = None

    def start(self) -> None:
        """Launch the engine; HostError when it cannot start (shown by the caller)."""
        self.process = EngineProcess(self.job_path, self._on_event, retake=self.retake)
        self.process.start()

    def _on_event(self, event: dict[str, Any]) -> None:
        # Called on the reader thread: signals cross to the UI thread by Qt's queued connection.
        self.event.emit(event)
        if event.get("event") in ("done", "error"):
            assert self.process is not None
            self.finished.emit(dict(event, cancelled=self.process.cancelled))

    def cancel(self) -> None:
        if self.process is not None:
            self.process.cancel()

    def running(self) -> bool:
        return self.process is not None and self.process.running()


class PreviewWorker(QObject):
    """Display PNGs from ``retake preview`` on a thread. ``ready(tag, paths)`` or ``failed(tag, message)``."""

    ready = Signal(str, list)
    failed = Signal(str, str)

    def __init__(self, retake: list[str] | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.retake = retake
        self._threads: list[threading.Thread] = []

    def request(self, tag: str, source: str, frames: list[int], out_pattern: str, *, size: int = 480,
                result: bool = False, colorspace: str | None = None, overlays: list[str] | None = None) -> None:
        self._start(tag, lambda: run_preview(source, frames, out_pattern, size=size, result=result,
                                             colorspace=colorspace, retake=self.retake, overlays=overlays))

    def track_faces(self, tag: str, plate: str, out: str, *, colorspace: str | None = None) -> None:
        """``retake track faces`` on a thread; ``ready(tag, [out])`` when the JSON is written."""
        self._start(tag, lambda: run_track_faces(plate, out, colorspace=colorspace, retake=self.retake))

    def _start(self, tag: str, job: Callable[[], list[str]]) -> None:
        def work() -> None:
            try:
                paths = job()
            except HostError as error:
                self.failed.emit(tag, str(error))
                return
            self.ready.emit(tag, paths)

        thread = threading.Thread(target=work, name=f"retake-preview-{tag}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def busy(self) -> bool:
        return any(t.is_alive() for t in self._threads)
