"""open_plate: sequences and movies on absolute frames, streaming, errors, describe."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import OpenEXR
import OpenImageIO as oiio
import pytest

from engine.errors import InputError
from engine.io import exr
from engine.io.describe import compress_frames, describe_plate, format_description
from engine.io.plates import open_plate
from tests.data_paths import require_data, write_exr


def _frame(value: float, size: tuple[int, int] = (4, 3)) -> np.ndarray:
    return np.full((size[1], size[0], 3), value, np.float16)


@pytest.fixture
def exr_plate(tmp_path: Path) -> Path:
    """sh010.1001..1006.exr, 1004 missing, 24000/1001 fps on every frame."""
    for frame in (1001, 1002, 1003, 1005, 1006):
        write_exr(tmp_path / f"sh010.{frame}.exr", _frame(frame - 1000), {"framesPerSecond": Fraction(24000, 1001)})
    return tmp_path


def test_sequence_plate_reads_frames_by_number(exr_plate: Path) -> None:
    with open_plate(str(exr_plate / "sh010.####.exr")) as plate:
        info = plate.info
        assert (info.kind, info.first, info.last, info.missing) == ("sequence", 1001, 1006, (1004,))
        assert info.fps == Fraction(24000, 1001) and (info.width, info.height) == (4, 3)
        assert plate.read(1005)[0, 0, 0] == 5
        assert plate.frame_path(1004) == str(exr_plate / "sh010.1004.exr")
        with pytest.raises(InputError) as caught:
            plate.read(1004)
        message = str(caught.value)
        assert "frame 1004" in message and "sh010.1004.exr" in message and 'plate.missing to "hold"' in message
        with pytest.raises(InputError, match="outside the plate"):
            plate.read(1007)


def test_open_plate_reads_only_the_first_header(exr_plate: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = exr.read_header
    monkeypatch.setattr(exr, "read_header", lambda path, **kw: calls.append(str(path)) or real(path, **kw))
    monkeypatch.setattr(exr, "read_image", lambda *a, **kw: pytest.fail("open_plate read pixels"))
    monkeypatch.setattr(exr, "read_header_and_image", lambda *a, **kw: pytest.fail("open_plate read pixels"))
    open_plate(str(exr_plate / "sh010.####.exr")).close()
    assert calls == [str(exr_plate / "sh010.1001.exr")]


def test_resolution_change_is_an_error(exr_plate: Path) -> None:
    write_exr(exr_plate / "sh010.1004.exr", _frame(4, (8, 6)))
    with open_plate(str(exr_plate / "sh010.####.exr")) as plate:
        with pytest.raises(InputError, match="8x6 but the plate's first frame is 4x3"):
            plate.read(1004)


def test_damaged_frame_names_the_frame(exr_plate: Path) -> None:
    (exr_plate / "sh010.1004.exr").write_bytes(b"\x76\x2f\x31\x01garbage")
    with open_plate(str(exr_plate / "sh010.####.exr")) as plate:
        with pytest.raises(InputError, match=r"\(frame 1004\).*OpenEXR"):
            plate.read(1004)


def test_no_plate_at_all(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="looked for"):
        open_plate(str(tmp_path / "nothing.####.exr"))
    with pytest.raises(InputError, match="unknown plate type"):
        open_plate(str(tmp_path / "notes.txt"))


def test_png_and_dpx_sequences(tmp_path: Path) -> None:
    for frame in (1, 2):
        for ext, fmt in (("png", "uint8"), ("dpx", "uint16")):
            out = oiio.ImageOutput.create(f"x.{ext}")
            assert out.open(str(tmp_path / f"g.{frame:04d}.{ext}"), oiio.ImageSpec(5, 4, 1 if ext == "png" else 3, fmt))
            out.write_image(np.full((4, 5, 1 if ext == "png" else 3), 0.5 * frame, np.float32))
            out.close()
    with open_plate(str(tmp_path / "g.%04d.png")) as plate:
        assert plate.info.header.file_format == "png" and plate.info.header.selected == ("Y",)
        image = plate.read(1)
        assert image.shape == (4, 5, 3) and abs(image[0, 0, 2] - 128 / 255) < 1e-6
        assert plate.info.header.colorspace_hint in (None, "srgb_rec709_scene")
    with open_plate(str(tmp_path / "g.0001.dpx")) as plate:
        assert (plate.info.first, plate.info.last) == (1, 2)
        assert plate.info.header.pixel_type == "uint16"
        assert abs(plate.read(2)[1, 1, 0] - 1.0) < 1e-6


def test_beachball_plate_and_description() -> None:
    require_data("exr", "beachball")
    pattern = str(require_data("exr", "beachball") / "singlepart.####.exr")
    with open_plate(pattern, view="left") as plate:
        info = plate.info
        assert (info.first, info.last, info.missing) == (1, 8, ())
        assert info.header.view == "left" and info.header.selected[0] == "left.R"
        assert plate.read(8).shape == (1556, 2048, 4)
        d = describe_plate(info)
    json.dumps(d)
    assert d["count"] == 8 and d["width"] == 2048 and d["data_window"] == [654, 245, 1564, 1120]
    assert d["views"] == ["right", "left"] and d["fps"] is None
    text = format_description(d)
    assert "2048x1556" in text and "right left" in text


def test_describe_missing_ranges_and_fps(exr_plate: Path) -> None:
    assert compress_frames((1003, 1004, 1005, 1010)) == "1003-1005,1010"
    assert compress_frames(()) == ""
    with open_plate(str(exr_plate / "sh010.####.exr"), first=1000, last=1008) as plate:
        d = describe_plate(plate.info)
    assert d["missing"] == "1000,1004,1007-1008" and d["fps"] == "24000/1001"
    assert "missing 1000,1004,1007-1008" in format_description(d)


def test_chromaticities_in_description() -> None:
    path = str(require_data("exr", "chromaticities") / "XYZ.exr")
    with open_plate(path) as plate:  # a still without a frame number is a one-frame plate
        assert (plate.info.kind, plate.info.first, plate.info.last) == ("still", 1001, 1001)
        assert plate.read(1001).shape == (406, 610, 3)
        assert "red 1,0  green 0,1  blue 0,0" in format_description(describe_plate(plate.info))
    header = exr.read_header(path)
    assert header.chromaticities is not None and header.chromaticities.red == (1.0, 0.0)
