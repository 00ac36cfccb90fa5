"""End to end through the engine: frames, fps, timecode, colour, safety, resume."""
from __future__ import annotations

import json
import os
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import OpenEXR
import pytest

from engine.colour import Colour
from engine.errors import InputError, JobError
from engine.io.plates import open_plate
from engine.job import parse_job
from engine.pipeline import RunOptions, run_job
from tests.plate_factory import checksums, plate_pixels, write_plate

CDL_KEY = {"slope": [1.2, 1.0, 0.8], "offset": [0.01, 0.0, -0.01], "power": [1.0, 1.1, 1.0], "saturation": 0.9}


def make_job(tmp_path: Path, plate_path: str, **overrides) -> dict:
    data = {
        "plate": {"path": plate_path},
        "keyframes": [{"frame": 1001, "grade": {}}, {"frame": 1008, "grade": CDL_KEY}],
        "transform": {"name": "grade"},
        "output": {"path": str(tmp_path / "out" / "result.####.exr")},
    }
    data.update(overrides)
    return data


def run(data: dict, **options):
    return run_job(parse_job(data), RunOptions(**options))


@pytest.fixture()
def plate(tmp_path):
    return write_plate(tmp_path / "plate")


def test_output_keeps_frames_fps_timecode_and_is_an_aces_container(tmp_path, plate):
    before = checksums(tmp_path / "plate")
    result = run(make_job(tmp_path, plate))
    assert result.rendered == list(range(1001, 1009))
    names = sorted(os.listdir(tmp_path / "out"))
    assert names == [f"result.{f}.exr" for f in range(1001, 1009)] + ["result.retake.json"]
    with open_plate(str(tmp_path / "out" / "result.####.exr")) as out, open_plate(plate) as src:
        assert (out.info.first, out.info.last, out.info.missing) == (src.info.first, src.info.last, ())
        assert out.info.fps == src.info.fps == Fraction(25)
        assert out.info.timecode == src.info.timecode == "10:00:00:00"
        assert out.info.header.aces_container and out.info.header.compression in ("none", "NO_COMPRESSION")
    header = OpenEXR.File(str(tmp_path / "out" / "result.1005.exr")).header()
    assert header["acesImageContainerFlag"] == 1
    assert checksums(tmp_path / "plate") == before


def test_keyframes_are_reproduced_exactly_and_hdr_survives(tmp_path, plate):
    run(make_job(tmp_path, plate))
    colour = Colour()
    with open_plate(str(tmp_path / "out" / "result.####.exr")) as out:
        first = out.read(1001)
        last = out.read(1008)
    source_first = plate_pixels(1001, 64, 48)
    # The neutral key leaves the frame as it was (half precision).
    np.testing.assert_allclose(first, source_first, rtol=2e-3, atol=2e-3)
    assert first.max() > 7.0  # the 8.0 HDR stripes are not clamped
    working = colour.to_working(plate_pixels(1008, 64, 48), "ACES2065-1")
    expected = colour.from_working(colour.cdl(working, CDL_KEY["slope"], CDL_KEY["offset"], CDL_KEY["power"],
                                              CDL_KEY["saturation"]), "ACES2065-1")
    np.testing.assert_allclose(last, expected, rtol=2e-3, atol=2e-3)


def test_farm_chunks_equal_one_run(tmp_path, plate):
    job = make_job(tmp_path, plate, output={"path": str(tmp_path / "chunks" / "r.####.exr")})
    run(job)
    (tmp_path / "chunks").rename(tmp_path / "whole")
    assert run(job, frames=(1001, 1004)).rendered == [1001, 1002, 1003, 1004]
    assert run(job, frames=(1005, 1008)).rendered == [1005, 1006, 1007, 1008]
    for frame in range(1001, 1009):
        assert (tmp_path / "whole" / f"r.{frame}.exr").read_bytes() == (tmp_path / "chunks" / f"r.{frame}.exr").read_bytes()
    chunked = job
    with pytest.raises(InputError, match="not inside the plate"):
        run(chunked, frames=(990, 1004))


def test_rerun_skips_complete_frames_and_rerenders_changed_ones(tmp_path, plate):
    data = make_job(tmp_path, plate)
    run(data)
    out = tmp_path / "out"
    reference = {f: (out / f"result.{f}.exr").read_bytes() for f in range(1001, 1009)}
    (out / "result.1003.exr").unlink()
    (out / "result.1006.exr").unlink()
    again = run(data)
    assert again.rendered == [1003, 1006] and len(again.skipped) == 6
    assert {f: (out / f"result.{f}.exr").read_bytes() for f in range(1001, 1009)} == reference
    # A different job (another slider value of the grade) re-renders everything.
    changed = make_job(tmp_path, plate, keyframes=[{"frame": 1001, "grade": {"saturation": 0.5}}])
    assert len(run(changed).rendered) == 8
    # A re-exported source frame is re-rendered even for the same job.
    run(data)
    src = Path(plate.replace("####", "1004"))
    os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 10**9))
    assert run(data).rendered == [1004]
    manifest = json.loads((out / "result.retake.json").read_text())
    assert manifest["rendered"] == "1004" and manifest["skipped"] == "1001-1003,1005-1008"


def test_refuses_to_write_over_inputs(tmp_path, plate):
    before = checksums(tmp_path / "plate")
    with pytest.raises(InputError, match="plate's own path"):
        run(make_job(tmp_path, plate, output={"path": plate}))
    # Even a frame the plate is missing may not be created inside the source sequence.
    os.remove(plate.replace("####", "1005"))
    before = checksums(tmp_path / "plate")
    with pytest.raises(InputError, match="overwrite an input"):
        run(make_job(tmp_path, plate, plate={"path": plate, "missing": "black"},
                     output={"path": plate.replace("plate.####", "plate.%04d")}))
    assert checksums(tmp_path / "plate") == before


def test_missing_frames_are_listed_or_handled_by_policy(tmp_path, plate):
    for frame in (1003, 1004, 1007):
        os.remove(plate.replace("####", str(frame)))
    with pytest.raises(InputError) as info:
        run(make_job(tmp_path, plate))
    text = str(info.value)
    assert "3 frame(s) missing from the plate: 1003-1004,1007" in text and "plate.1003.exr" in text
    assert '"hold"' in text
    held = run(make_job(tmp_path, plate, plate={"path": plate, "missing": "hold"},
                        keyframes=[{"frame": 1001, "grade": {}}]))
    assert held.rendered == list(range(1001, 1009))
    with open_plate(str(tmp_path / "out" / "result.####.exr")) as out:
        np.testing.assert_array_equal(out.read(1004), out.read(1002))
    black = run(make_job(tmp_path, plate, plate={"path": plate, "missing": "black"},
                         keyframes=[{"frame": 1001, "grade": {}}],
                         output={"path": str(tmp_path / "black" / "b.####.exr")}))
    assert len(black.rendered) == 8
    with open_plate(str(tmp_path / "black" / "b.####.exr")) as out:
        assert np.abs(out.read(1007)).max() == 0.0


def test_nan_and_inf_are_reported_per_frame_and_sanitised_only_on_request(tmp_path):
    folder = tmp_path / "plate"
    plate = write_plate(folder, count=3)
    bad = plate_pixels(1002, 64, 48)
    bad[3, 4, 0] = np.nan
    bad[5, 6, 1] = np.inf
    # Our writer saturates infinities, so write this broken frame as a renderer would: 32-bit float.
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                 {"RGB": bad}).write(str(folder / "plate.1002.exr"))
    with pytest.raises(InputError) as info:
        run(make_job(tmp_path, plate, keyframes=[{"frame": 1001, "grade": {}}]))
    assert info.value.frame == 1002 and "1 NaN and 1 Inf" in str(info.value) and "sanitize" in str(info.value)
    events: list[tuple[dict, str]] = []
    result = run(make_job(tmp_path, plate, plate={"path": plate, "nonfinite": "sanitize"},
                          keyframes=[{"frame": 1001, "grade": {}}]),
                 progress=lambda event: events.append((event, threading.current_thread().name)))
    assert any("frame 1002" in w for w in result.warnings)
    # Frame 1002 was read ahead on a worker thread; its warning still comes once, from the render's.
    said = [event for event, _ in events if event["event"] == "warning" and event.get("frame") == 1002]
    assert len(said) == 1 and "1 NaN and 1 Inf" in said[0]["message"]
    assert {thread for _, thread in events} == {threading.current_thread().name}
    with open_plate(str(tmp_path / "out" / "result.####.exr")) as out:
        assert np.isfinite(out.read(1002)).all()


def test_draft_and_explicit_resolution(tmp_path):
    plate = write_plate(tmp_path / "plate", count=2, width=128, height=72)
    run(make_job(tmp_path, plate, keyframes=[{"frame": 1001, "grade": {}}]), draft=True)
    with open_plate(str(tmp_path / "out" / "result.####.exr")) as out:
        assert (out.info.width, out.info.height) == (640, 360)
    run(make_job(tmp_path, plate, keyframes=[{"frame": 1001, "grade": {}}],
                 output={"path": str(tmp_path / "o2" / "r.####.exr"), "resolution": "32x18"}))
    with open_plate(str(tmp_path / "o2" / "r.####.exr")) as out:
        assert (out.info.width, out.info.height) == (32, 18)


def test_job_errors_name_the_field(tmp_path, plate):
    with pytest.raises(JobError) as info:
        run(make_job(tmp_path, plate, keyframes=[{"frame": 1001}]))
    assert info.value.path == "$.keyframes[0]"
    with pytest.raises(JobError, match="outside the plate"):
        run(make_job(tmp_path, plate, keyframes=[{"frame": 2000, "grade": {}}]))
    with pytest.raises(InputError, match="nearest|known|Did you mean|ACES"):
        run(make_job(tmp_path, plate, plate={"path": plate, "colorspace": "ACEScgg"}))


def test_a_keyframe_file_changed_under_the_same_name_rerenders(tmp_path, plate):
    from engine.pipeline import _source_stamp

    key_image = tmp_path / "key.exr"
    key_image.write_bytes(b"painted once")
    data = make_job(tmp_path, plate, keyframes=[{"frame": 1001, "grade": {}, "reference": str(key_image)}])
    assert len(run(data).rendered) == 8
    assert run(data).rendered == []
    stamp = _source_stamp(str(key_image))
    key_image.write_bytes(b"painted twice, a longer file")
    assert _source_stamp(str(key_image)) != stamp
    assert len(run(data).rendered) == 8
