"""Source frames read one ahead on a worker thread, the last few kept.

Reading a frame is host work beside the render: the EXR's decompression, the colour
conversion to the working space, the NaN/Inf check. At 1080p it took 35-90 ms a frame on
the 2-core CPU. ``ReadAhead`` keeps the last ``keep`` frames it gave out (neighbouring
frames are read again by transforms that look at them) and, when told which frame comes
next, reads it on one worker thread while the current one is rendered.

``read`` is never called by two threads at once (a movie's decoder and OpenImageIO's
plate readers are not made for that). What ``read`` raises for a frame (a broken file, a
NaN it refuses) is raised by the ``get`` of that frame, on the caller's thread; a frame
read ahead and never asked for costs a read and nothing else.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

__all__ = ["ReadAhead"]

T = TypeVar("T")


class ReadAhead(Generic[T]):
    """``get(frame)``: ``read(frame)``, kept for the last ``keep`` frames; ``prefetch(frame)`` reads one ahead.

    ahead: False reads only on ``get`` (``prefetch`` does nothing)."""

    def __init__(self, read: Callable[[int], T], keep: int, *, ahead: bool = True) -> None:
        if keep < 1:
            raise ValueError(f"keep must be 1 or more, got {keep}")
        self._read = read
        self.keep = keep
        self._kept: OrderedDict[int, T] = OrderedDict()
        self._reading = threading.Lock()          # held around every call of ``read``
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="retake-read") if ahead else None
        self._ahead: tuple[int, Future[T]] | None = None

    def get(self, frame: int) -> T:
        """Frame ``frame``, read now unless kept or read ahead (then waited for)."""
        if frame in self._kept:
            self._kept.move_to_end(frame)
            return self._kept[frame]
        if self._ahead is not None and self._ahead[0] == frame:
            future = self._ahead[1]
            self._ahead = None
            value = future.result()               # raises what reading it raised
        else:
            with self._reading:
                value = self._read(frame)
        self._keep(frame, value)
        return value

    def prefetch(self, frame: int) -> None:
        """Start reading ``frame`` on the worker (one frame at a time; a frame kept is not read)."""
        if self._pool is None or frame in self._kept or (self._ahead is not None and self._ahead[0] == frame):
            return
        if self._ahead is not None:
            self._ahead[1].cancel()                  # not yet started: dropped; under way: finishes unused
        self._ahead = (frame, self._pool.submit(self._read_locked, frame))

    def close(self) -> None:
        """Stop the worker (a read under way finishes; its frame is dropped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._ahead = None

    def _read_locked(self, frame: int) -> T:
        with self._reading:
            return self._read(frame)

    def _keep(self, frame: int, value: T) -> None:
        self._kept[frame] = value
        while len(self._kept) > self.keep:
            self._kept.popitem(last=False)
