"""`retake preview`: display PNGs through OCIO for panels, from a plate or a job's result."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import OpenImageIO as oiio

from engine.colour import Colour
from engine.io.exr import read_image
from plugin.engine_process import EngineProcess, find_retake, run_preview
from plugin.hosts.base import HostError
from tests.fakes.scenes import write_acescg_plate
from tests.fakes.scenes import no_engine_left_behind  # noqa: F401 - autouse: kills engines a failed test left


def _png(path: str) -> np.ndarray:
    buf = oiio.ImageBuf(path)
    assert buf.spec().format == oiio.UINT8 and buf.spec().nchannels == 3
    return np.asarray(buf.get_pixels(oiio.UINT8))


def test_plate_frames_become_srgb_display_pngs(tmp_path: Path) -> None:
    plate = write_acescg_plate(tmp_path / "plate", last=1003, width=64, height=36)
    written = run_preview(plate, [1001, 1003], str(tmp_path / "thumb.####.png"), size=64, colorspace="ACEScg")
    assert written == [str(tmp_path / "thumb.1001.png"), str(tmp_path / "thumb.1003.png")]
    pixels = _png(written[1])
    assert pixels.shape == (36, 64, 3)
    source = read_image(plate.replace("####", "1003"))
    expected = np.clip(Colour().to_display(Colour().to_working(source, "ACEScg")), 0, 1) * 255
    np.testing.assert_allclose(pixels.astype(np.float32), expected, atol=1.01)  # 8-bit rounding only
    small = run_preview(plate, [1002], str(tmp_path / "small.png"), size=32, colorspace="ACEScg")
    assert _png(small[0]).shape == (18, 32, 3)


def test_errors_come_back_with_the_engine_message(tmp_path: Path) -> None:
    plate = write_acescg_plate(tmp_path / "plate", last=1002, width=16, height=16)
    try:
        run_preview(plate, [1010], str(tmp_path / "x.png"))
    except HostError as error:
        assert "frame 1010 is outside the plate (1001-1002)" in str(error)
    else:
        raise AssertionError("a frame outside the plate must fail")


def test_engine_process_reports_progress_and_a_named_error(tmp_path: Path) -> None:
    plate = write_acescg_plate(tmp_path / "plate", last=1002, width=16, height=16)
    job = {"version": 1, "plate": {"path": plate, "colorspace": "ACEScg"}, "transform": {"name": "grade"},
           "keyframes": [{"frame": 1001, "grade": {"saturation": 1.2}}],
           "output": {"path": str(tmp_path / "out" / "o.####.exr")}}
    good = tmp_path / "good.json"
    good.write_text(json.dumps(job))
    events: list[dict] = []
    process = EngineProcess(str(good), events.append).start()
    assert process.wait(120) == 0
    assert [e["event"] for e in events if e["event"] != "warning"] == ["start", "frame", "frame", "done"]
    frame = next(e for e in events if e["event"] == "frame")
    assert frame["total"] == 2 and "fps" in frame and "eta_s" in frame
    after = run_preview(str(good), [1002], str(tmp_path / "after.png"), result=True)
    assert _png(after[0]).shape == (16, 16, 3)
    job["plate"]["colorspace"] = "ACEScgg"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(job))
    errors: list[dict] = []
    process = EngineProcess(str(bad), errors.append).start()
    assert process.wait(120) == 2
    assert errors[-1]["event"] == "error" and errors[-1]["exit_code"] == 2
    assert "unknown colour space 'ACEScgg'" in errors[-1]["message"] and "ACEScg" in errors[-1]["hint"]


def test_the_engine_is_found_from_retake_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_home = tmp_path / "retake"
    command = fake_home / ".venv" / "bin" / "retake"
    command.parent.mkdir(parents=True)
    command.write_text("#!/bin/sh\n")
    command.chmod(0o755)
    monkeypatch.delenv("RETAKE_BIN", raising=False)
    monkeypatch.setenv("RETAKE_HOME", str(fake_home))
    assert find_retake() == [str(command)]
    assert find_retake(str(command)) == [str(command)]
    monkeypatch.setenv("RETAKE_HOME", str(tmp_path / "nowhere"))
    monkeypatch.setenv("PATH", str(tmp_path))
    found = find_retake()  # this checkout's own .venv comes next
    assert found[0].endswith(".venv/bin/retake")
