"""engine.io.read_ahead: frames kept and read one ahead, never two reads at once, errors where asked."""
from __future__ import annotations

import threading
import time

import pytest

from engine.io.read_ahead import ReadAhead


class Source:
    """A frame reader that records its calls, their threads and how many ran at once."""

    def __init__(self, seconds: float = 0.0, broken: int | None = None) -> None:
        self.seconds = seconds
        self.broken = broken
        self.calls: list[tuple[int, str]] = []
        self.running = 0
        self.most_running = 0
        self.lock = threading.Lock()

    def __call__(self, frame: int) -> str:
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            self.calls.append((frame, threading.current_thread().name))
        try:
            time.sleep(self.seconds)
            if frame == self.broken:
                raise OSError(f"frame {frame}: broken EXR")
            return f"pixels {frame}"
        finally:
            with self.lock:
                self.running -= 1


def test_frames_are_kept_and_the_oldest_forgotten():
    source = Source()
    reader = ReadAhead(source, keep=2, ahead=False)
    assert [reader.get(f) for f in (1, 2, 1, 3, 1, 2)] == ["pixels 1", "pixels 2", "pixels 1", "pixels 3",
                                                           "pixels 1", "pixels 2"]
    # 1 stays (asked for again before 3 came), 2 is forgotten when 3 comes and read again.
    assert [f for f, _ in source.calls] == [1, 2, 3, 2]
    reader.prefetch(9)   # ahead=False: nothing
    assert [f for f, _ in source.calls] == [1, 2, 3, 2]
    reader.close()
    with pytest.raises(ValueError):
        ReadAhead(source, keep=0)


def test_the_next_frame_is_read_on_the_worker_and_taken_from_there():
    source = Source(seconds=0.05)
    reader = ReadAhead(source, keep=4)
    reader.get(1)
    reader.prefetch(2)
    time.sleep(0.01)
    assert reader.get(2) == "pixels 2"       # waits for the read under way instead of reading again
    assert source.calls[0][1] == threading.current_thread().name
    assert [f for f, _ in source.calls] == [1, 2] and source.calls[1][1].startswith("retake-read")
    reader.prefetch(2)                       # kept: not read again
    assert len(source.calls) == 2
    reader.close()


def test_reads_never_overlap():
    # A transform asks for another frame while the next is being read ahead: it waits its turn.
    source = Source(seconds=0.03)
    reader = ReadAhead(source, keep=8)
    for frame in range(0, 12, 2):
        reader.prefetch(frame + 1)
        reader.get(frame)
        reader.get(frame + 1)
    reader.close()
    assert source.most_running == 1
    assert sorted(f for f, _ in source.calls) == list(range(12))


def test_a_read_error_is_raised_where_the_frame_is_asked_for():
    source = Source(broken=3)
    reader = ReadAhead(source, keep=4)
    reader.prefetch(3)
    time.sleep(0.02)
    with pytest.raises(OSError, match="frame 3: broken EXR"):
        reader.get(3)
    reader.prefetch(3)
    reader.prefetch(4)    # frame 3 never asked for again: its error goes nowhere
    assert reader.get(4) == "pixels 4"
    reader.close()
