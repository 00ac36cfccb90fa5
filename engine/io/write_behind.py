"""Frames written on worker threads while the next ones are made.

Writing a frame is host work that the device cannot speed up: the colour conversion to
the output space, the half conversion, the EXR's compression, the fsync. At 1080p it took
75-120 ms a frame on the 2-core CPU (``bench/io.py``), more than a whole GPU frame's
budget at 24 frames/s. ``WriteBehind`` hands each ``write`` to a small pool of threads
(OpenColorIO, OpenEXR, OpenImageIO and the file system all release the GIL) and reports
the frames back in the order they were given, once they are on disk, so progress events
and the run's record of rendered frames never name a file that is not there yet.

Frames in flight are bounded (``workers + 1``): host memory holds at most that many
output frames, whatever the clip length. A movie is written by one thread, in order.
A write that fails is raised by the next ``done`` on the caller's thread,
with its own message (the file and frame); writes already under way still finish, and
what they finish is a valid file (every writer writes atomically).
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

import numpy as np

from engine.host_threads import background_threads
from engine.io.writers import FrameWriter

__all__ = ["WriteBehind", "write_threads"]


def write_threads(container: str, requested: int | None = None) -> int:
    """How many threads write a run's frames: ``requested`` (0: none, write on the render thread)
    or by default ``background_threads()``; a movie never more than 1 (its frames must arrive
    in order)."""
    if requested is not None and requested < 0:
        raise ValueError(f"write threads must be 0 or more, got {requested}")
    count = requested if requested is not None else background_threads()
    return min(count, 1) if container in ("mov", "mp4") else count


class WriteBehind:
    """``writer``'s writes on ``workers`` threads; ``done`` says which frames are finished, in order.

    workers: 0 writes on the caller's thread, as if there were no ``WriteBehind``.
    """

    def __init__(self, writer: FrameWriter, workers: int) -> None:
        if workers < 0:
            raise ValueError(f"workers must be 0 or more, got {workers}")
        self.writer = writer
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="retake-write") if workers else None
        # (frame, skipped, the write or None): in the order given, until reported by ``done``.
        self._order: deque[tuple[int, bool, Future[None] | None]] = deque()

    def write(self, frame: int, pixels_working: np.ndarray, metadata: dict[str, str]) -> None:
        """Queue one frame: (H, W, 3|4) float32 ACEScg, which the caller must not change afterwards.

        Waits while ``workers + 1`` writes are in flight. A failed write is raised by ``done``."""
        if self._pool is None:
            self.writer.write(frame, pixels_working, metadata)
            self._order.append((frame, False, None))
            return
        while True:
            in_flight = [f for _, _, f in self._order if f is not None and not f.done()]
            if len(in_flight) <= self.workers:
                break
            wait(in_flight, return_when=FIRST_COMPLETED)
        self._order.append((frame, False, self._pool.submit(self.writer.write, frame, pixels_working, metadata)))

    def skip(self, frame: int) -> None:
        """A frame that needs no write (already on disk): reported by ``done`` in its place."""
        self._order.append((frame, True, None))

    def done(self, wait_all: bool = False) -> list[tuple[int, bool]]:
        """The frames finished since the last call, in the order given, as (frame, skipped).

        wait_all: wait for every write queued so far. A failed write's error is raised once the
        frames before it have been returned: by this call when there are none, else by the next."""
        finished: list[tuple[int, bool]] = []
        while self._order:
            frame, skipped, future = self._order[0]
            if future is not None:
                if not future.done() and not wait_all:
                    break
                if future.exception() is not None:   # waits for it when wait_all
                    if finished:
                        return finished
                    self._order.popleft()
                    raise future.exception()         # type: ignore[misc]
            self._order.popleft()
            finished.append((frame, skipped))
        return finished

    def close(self, *, abort: bool | None = None) -> None:
        """Wait for the writes under way (their frames are kept), then close the writer.

        Errors of writes nobody asked ``done`` about are dropped here: ``close`` runs as a
        render ends, often because of an earlier error, which is the one to report."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.writer.close(abort=abort)
