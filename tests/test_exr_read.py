"""EXR headers and pixels: real files from openexr-images and small files written here."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import OpenEXR
import pytest

from engine.errors import InputError
from engine.io.exr import read_header, read_image
from engine.io.header import AP0, Window
from tests.data_paths import require_data, write_exr


def _channel(path, name: str) -> np.ndarray:
    """One channel's data-window pixels, read with OpenEXR itself (the independent check)."""
    with OpenEXR.File(str(path), separate_channels=True) as file:
        return np.asarray(file.channels()[name].pixels, dtype=np.float32)


def test_beachball_windows_channels_and_views() -> None:
    path = require_data("exr", "beachball", "singlepart.0001.exr")
    header = read_header(path)
    assert header.file_format == "openexr"
    assert header.display_window == Window(0, 0, 2047, 1555)
    assert header.data_window == Window(654, 245, 1564, 1120)
    assert header.views == ("right", "left") and header.view == "right"
    assert header.selected == ("R", "G", "B", "A")
    assert "forward.left.u" in header.channels and "left.R" in header.channels
    assert header.pixel_type == "half" and header.compression == "zips"
    assert read_header(path, view="left").selected == ("left.R", "left.G", "left.B", "left.A")


def test_beachball_pixels_sit_in_the_display_window() -> None:
    path = require_data("exr", "beachball", "singlepart.0001.exr")
    image = read_image(path)
    assert image.shape == (1556, 2048, 4) and image.dtype == np.float32
    red = _channel(path, "R")
    alpha = _channel(path, "A")
    np.testing.assert_array_equal(image[245:1121, 654:1565, 0], red)
    np.testing.assert_array_equal(image[245:1121, 654:1565, 3], alpha)
    assert not image[:245].any() and not image[:, :654].any() and not image[1121:].any()
    left = read_image(path, view="left")
    np.testing.assert_array_equal(left[245:1121, 654:1565, 1], _channel(path, "left.G"))


def test_chromaticities_are_reported_exactly() -> None:
    xyz = read_header(require_data("exr", "chromaticities", "XYZ.exr"))
    assert xyz.chromaticities is not None
    assert xyz.chromaticities.red == (1.0, 0.0)
    assert xyz.chromaticities.green == (0.0, 1.0)
    assert xyz.chromaticities.blue == (0.0, 0.0)
    assert xyz.chromaticities.white == pytest.approx((1 / 3, 1 / 3), abs=1e-7)
    # Rec709.exr has no chromaticities attribute: the file states nothing.
    assert read_header(require_data("exr", "chromaticities", "Rec709.exr")).chromaticities is None


@pytest.mark.parametrize(
    "name, size, selected",
    [
        ("AllHalfValues.exr", (256, 256), ("R", "G", "B")),
        ("BrightRingsNanInf.exr", (800, 800), ("R", "G", "B")),
        ("WideFloatRange.exr", (500, 500), ("G",)),
        ("GammaChart.exr", (800, 800), ("R", "G", "B")),
        ("Desk.exr", (644, 874), ("R", "G", "B", "A")),
        ("Cannon.exr", (780, 566), ("R", "G", "B")),
        ("DisplayWindow_t01.exr", (400, 300), ("R", "G", "B")),
        ("MultiView_Fog.exr", (1000, 672), ("Y",)),
    ],
)
def test_testimages(name: str, size: tuple[int, int], selected: tuple[str, ...]) -> None:
    path = require_data("exr", "testimages", name)
    header = read_header(path)
    assert (header.display_window.width, header.display_window.height) == size
    assert header.selected == selected
    image = read_image(path)
    assert image.shape == (size[1], size[0], 4 if "A" in selected else 3)


def test_special_values_survive() -> None:
    rings = read_image(require_data("exr", "testimages", "BrightRingsNanInf.exr"))
    assert np.isnan(rings).any() and np.isinf(rings).any()
    np.testing.assert_array_equal(np.isnan(rings[..., 0]), np.isnan(_channel(require_data("exr", "testimages", "BrightRingsNanInf.exr"), "R")))
    wide = read_image(require_data("exr", "testimages", "WideFloatRange.exr"))
    green = _channel(require_data("exr", "testimages", "WideFloatRange.exr"), "G")
    np.testing.assert_array_equal(wide[..., 1], green)
    assert np.nanmax(green) > 1.0
    assert not wide[..., 0].any() and not wide[..., 2].any()  # missing R and B read as 0, as in Nuke
    halves = read_image(require_data("exr", "testimages", "AllHalfValues.exr"))
    assert np.isfinite(halves).sum() > 0 and halves.dtype == np.float32


def test_luminance_is_replicated_and_views_chosen() -> None:
    path = require_data("exr", "testimages", "MultiView_Fog.exr")
    header = read_header(path)
    assert header.views == ("left", "right") and header.view == "left"
    image = read_image(path)
    y = _channel(path, "Y")
    for c in range(3):
        np.testing.assert_array_equal(image[..., c], y)
    right = read_image(path, view="right")
    np.testing.assert_array_equal(right[..., 0], _channel(path, "right.Y"))
    with pytest.raises(InputError, match="no view 'centre'"):
        read_header(path, view="centre")


def test_aces_container_fps_timecode_and_data_window_outside(tmp_path) -> None:
    code = OpenEXR.TimeCode()
    code.hours, code.minutes, code.seconds, code.frame = 1, 2, 3, 4
    rgb = np.arange(4 * 6 * 3, dtype=np.float32).reshape(4, 6, 3)
    path = write_exr(
        tmp_path / "aces.exr",
        rgb.astype(np.float16),
        {
            "compression": OpenEXR.NO_COMPRESSION,
            "acesImageContainerFlag": 1,
            "chromaticities": (*AP0.red, *AP0.green, *AP0.blue, *AP0.white),
            "framesPerSecond": Fraction(24000, 1001),
            "timeCode": code,
            # Data window (6x4 at x=-2, y=1) sticks out of the 5x5 display window on the left.
            "dataWindow": (np.array([-2, 1], np.int32), np.array([3, 4], np.int32)),
            "displayWindow": (np.array([0, 0], np.int32), np.array([4, 4], np.int32)),
        },
    )
    header = read_header(path)
    assert header.aces_container and header.colorspace_hint == "ACES2065-1"
    assert header.chromaticities is not None and header.chromaticities.close_to(AP0, 1e-6)
    assert header.fps == Fraction(24000, 1001)
    assert header.timecode == "01:02:03:04"
    assert header.compression == "none"
    image = read_image(path)
    assert image.shape == (5, 5, 3)
    assert not image[0].any()
    # Display x=0..3 holds data columns 2..5; display x=4 is outside the data window.
    np.testing.assert_array_equal(image[1:5, 0:4], rgb[:, 2:6])
    assert not image[:, 4].any()


def test_multipart_by_name_index_and_view(tmp_path) -> None:
    left = np.full((2, 3, 3), 0.25, np.float16)
    right = np.full((2, 3, 3), 0.75, np.float16)
    parts = [
        OpenEXR.Part({"name": "depth", "type": OpenEXR.scanlineimage}, {"Z": np.ones((2, 3), np.float32)}),
        OpenEXR.Part({"name": "L", "view": "left", "type": OpenEXR.scanlineimage}, {"RGB": left}),
        OpenEXR.Part({"name": "R", "view": "right", "type": OpenEXR.scanlineimage}, {"RGB": right}),
    ]
    path = tmp_path / "multi.exr"
    OpenEXR.File(parts).write(str(path))
    header = read_header(path)
    assert header.parts == ("depth", "L", "R") and header.part == "L" and header.view == "left"
    assert header.views == ("left", "right")
    assert read_image(path)[0, 0, 0] == 0.25
    assert read_image(path, part="R")[0, 0, 0] == 0.75
    assert read_image(path, part="2")[0, 0, 0] == 0.75
    assert read_image(path, view="right")[0, 0, 0] == 0.75
    with pytest.raises(InputError, match="no colour channels"):
        read_header(path, part="depth")
    with pytest.raises(InputError, match="no part named 'X'"):
        read_header(path, part="X")


def test_float_and_uint_channels(tmp_path) -> None:
    rgb = np.linspace(0, 100, 2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3)
    header = read_header(write_exr(tmp_path / "f.exr", rgb))
    assert header.pixel_type == "float"
    np.testing.assert_array_equal(read_image(tmp_path / "f.exr"), rgb)
    ids = np.arange(12, dtype=np.uint32).reshape(2, 2, 3) * 1000
    path = tmp_path / "u.exr"
    OpenEXR.File({"type": OpenEXR.scanlineimage}, {"RGB": ids}).write(str(path))
    assert read_header(path).pixel_type == "uint"
    np.testing.assert_array_equal(read_image(path), ids.astype(np.float32))


def test_not_an_exr_and_missing_file(tmp_path) -> None:
    bad = tmp_path / "bad.exr"
    bad.write_bytes(b"hello, not an image")
    with pytest.raises(InputError, match="not an OpenEXR file") as caught:
        read_header(bad)
    assert str(bad) in str(caught.value) and caught.value.hint
    with pytest.raises(InputError, match="file not found"):
        read_image(tmp_path / "nothing.exr")
