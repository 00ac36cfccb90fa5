"""engine.io.write_behind: frames written on threads, reported in order once on disk; and the pipeline with it."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import OpenEXR
import pytest

from engine.errors import CancelledError
from engine.io import writers
from engine.io.write_behind import WriteBehind, write_threads
from engine.job import parse_job
from engine.pipeline import RunOptions, run_job
from tests.plate_factory import write_plate


class FakeWriter:
    """Records each write, when it finished and on which thread; frames in ``slow`` take longer."""

    def __init__(self, delays: dict[int, float] | None = None, fail: int | None = None) -> None:
        self.delays = delays or {}
        self.fail = fail
        self.finished: list[int] = []
        self.threads: set[str] = set()
        self.lock = threading.Lock()
        self.running = 0
        self.most_running = 0
        self.closed_with: list[bool | None] = []

    def write(self, frame: int, pixels: np.ndarray, metadata: dict[str, str]) -> None:
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            self.threads.add(threading.current_thread().name)
        try:
            time.sleep(self.delays.get(frame, 0.0))
            if frame == self.fail:
                raise OSError(28, f"No space left on device: frame {frame}")
            with self.lock:
                self.finished.append(frame)
        finally:
            with self.lock:
                self.running -= 1

    def frame_path(self, frame: int) -> str:
        return f"f.{frame}"

    def is_complete(self, frame: int, job_hash: str) -> bool:
        return False

    def close(self, *, abort: bool | None = None) -> None:
        self.closed_with.append(abort)

    def describe(self) -> str:
        return "fake"


PIXELS = np.zeros((2, 2, 3), np.float32)


def test_frames_are_reported_in_the_order_given_and_only_once_written():
    # Early frames are the slow ones: they finish last, yet are reported first.
    fake = FakeWriter(delays={1: 0.15, 2: 0.1, 3: 0.0, 5: 0.05})
    behind = WriteBehind(fake, workers=3)
    reported: list[tuple[int, bool]] = []
    for frame in range(1, 7):
        if frame == 4:
            behind.skip(4)
        else:
            behind.write(frame, PIXELS, {})
        for done in behind.done():
            assert done[1] or done[0] in fake.finished, f"frame {done[0]} reported before it was written"
            reported.append(done)
    reported += behind.done(wait_all=True)
    behind.close()
    assert reported == [(1, False), (2, False), (3, False), (4, True), (5, False), (6, False)]
    assert sorted(fake.finished) == [1, 2, 3, 5, 6] and fake.finished != [1, 2, 3, 5, 6]   # really in parallel
    assert fake.threads and all(name.startswith("retake-write") for name in fake.threads)
    assert fake.closed_with == [None]


def test_frames_in_flight_are_bounded():
    fake = FakeWriter(delays={f: 0.03 for f in range(12)})
    behind = WriteBehind(fake, workers=2)
    most_queued = 0
    for frame in range(12):
        behind.write(frame, PIXELS, {})
        most_queued = max(most_queued, frame + 1 - len(fake.finished))
    assert [f for f, _ in behind.done(wait_all=True)] == list(range(12))
    behind.close()
    assert fake.most_running <= 2
    assert most_queued <= 3, "more than workers + 1 frames held in memory"


def test_no_workers_writes_on_the_callers_thread():
    fake = FakeWriter()
    behind = WriteBehind(fake, workers=0)
    behind.write(7, PIXELS, {})
    assert fake.finished == [7] and fake.threads == {threading.current_thread().name}
    assert behind.done() == [(7, False)]
    with pytest.raises(ValueError):
        WriteBehind(fake, workers=-1)


def test_a_failed_write_is_raised_after_the_frames_before_it_and_the_rest_still_finish():
    fake = FakeWriter(delays={3: 0.05, 4: 0.1}, fail=2)
    behind = WriteBehind(fake, workers=2)
    for frame in range(1, 5):
        behind.write(frame, PIXELS, {})
    assert behind.done(wait_all=True) == [(1, False)]
    with pytest.raises(OSError, match="No space left on device: frame 2"):
        behind.done(wait_all=True)
    behind.close(abort=True)
    assert sorted(fake.finished) == [1, 3, 4]     # writes under way were not cut off
    assert fake.closed_with == [True]


def test_a_movie_is_written_by_one_thread_in_order():
    assert write_threads("mov") == write_threads("mp4", 3) == 1 and write_threads("mov", 0) == 0
    assert 1 <= write_threads("exr") <= 4 and write_threads("png", 3) == 3 and write_threads("exr", 0) == 0
    with pytest.raises(ValueError):
        write_threads("exr", -1)
    fake = FakeWriter(delays={0: 0.05, 1: 0.02})
    behind = WriteBehind(fake, workers=write_threads("mov"))
    for frame in range(4):
        behind.write(frame, PIXELS, {})
    behind.done(wait_all=True)
    assert fake.finished == [0, 1, 2, 3]


# -- the pipeline with write-behind -------------------------------------------------------


def _job(tmp_path: Path, plate: str, out: str) -> dict:
    return {"plate": {"path": plate},
            "keyframes": [{"frame": 1001, "grade": {}}, {"frame": 1012, "grade": {"slope": [1.2, 1.0, 0.8]}}],
            "transform": {"name": "grade"},
            "output": {"path": str(tmp_path / out / "r.####.exr")}}


def _slow_writes(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    write = writers.ExrSequenceWriter.write

    def slow(self, frame, pixels, metadata):
        time.sleep(seconds)
        write(self, frame, pixels, metadata)

    monkeypatch.setattr(writers.ExrSequenceWriter, "write", slow)


def _pixels(folder: Path) -> dict[str, bytes]:
    """Each frame's channels, bytes as stored (the headers differ: the job hash covers the output path)."""
    frames = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".exr"):
            with OpenEXR.File(str(folder / name)) as exr:
                frames[name] = b"".join(channel.pixels.tobytes() for _, channel in sorted(exr.channels().items()))
    return frames


def test_pipeline_reports_each_frame_once_its_file_is_there_and_writes_what_a_single_thread_writes(
        tmp_path, monkeypatch):
    plate = write_plate(tmp_path / "plate", count=12)
    _slow_writes(monkeypatch, 0.05)
    seen: list[int] = []

    def on_progress(event: dict) -> None:
        if event["event"] == "frame":
            assert os.path.isfile(event["path"]), f"frame {event['frame']} reported before its file exists"
            seen.append(event["frame"])

    threaded = run_job(parse_job(_job(tmp_path, plate, "threaded")), RunOptions(progress=on_progress, write_threads=3))
    single = run_job(parse_job(_job(tmp_path, plate, "single")), RunOptions(write_threads=0))
    assert seen == threaded.rendered == single.rendered == list(range(1001, 1013))
    assert _pixels(tmp_path / "threaded") == _pixels(tmp_path / "single")


def test_a_cancel_with_writes_in_flight_keeps_every_reported_frame_and_a_rerun_resumes(tmp_path, monkeypatch):
    plate = write_plate(tmp_path / "plate", count=12)
    _slow_writes(monkeypatch, 0.05)
    options = RunOptions(write_threads=3)
    seen: list[int] = []

    def on_progress(event: dict) -> None:
        if event["event"] == "frame":
            seen.append(event["frame"])
            if len(seen) == 2:
                options.cancel.set()

    options.progress = on_progress
    with pytest.raises(CancelledError):
        run_job(parse_job(_job(tmp_path, plate, "out")), options)
    on_disk = sorted(int(name.split(".")[1]) for name in os.listdir(tmp_path / "out") if name.endswith(".exr"))
    assert seen == on_disk, "every frame on disk was reported, and every reported frame is on disk"
    assert 2 <= len(on_disk) < 12
    assert not [name for name in os.listdir(tmp_path / "out") if "retake-tmp" in name]

    resumed = run_job(parse_job(_job(tmp_path, plate, "out")), RunOptions(write_threads=3))
    assert resumed.skipped == on_disk and sorted(resumed.skipped + resumed.rendered) == list(range(1001, 1013))
    run_job(parse_job(_job(tmp_path, plate, "whole")), RunOptions(write_threads=0))
    assert _pixels(tmp_path / "out") == _pixels(tmp_path / "whole")
