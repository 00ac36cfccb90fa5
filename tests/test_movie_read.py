"""Movies through PyAV: frame count, rate, order, streaming and random access.

Each clip is made here with PyAV: frame i has green = 20 * i (8-bit), so the
order of decoded frames can be checked.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from engine.errors import InputError
from engine.io.movies import MovieReader
from engine.io.plates import open_plate

FRAMES = 12
NTSC_FILM = Fraction(24000, 1001)

CODECS = [
    # (file name, encoder, pixel format, options, width, height)
    ("prores_hq.mov", "prores_ks", "yuv422p10le", {"profile": "3"}, 64, 48),
    ("prores_4444.mov", "prores_ks", "yuva444p10le", {"profile": "4"}, 64, 48),
    ("dnxhr.mxf", "dnxhd", "yuv422p", {"profile": "dnxhr_hq"}, 256, 144),
    ("h264.mp4", "libx264", "yuv420p", {"g": "4", "bf": "2"}, 64, 48),
    ("hevc.mkv", "libx265", "yuv420p", {"x265-params": "keyint=4:log-level=none"}, 64, 48),
]


def _make(path: Path, codec: str, pix_fmt: str, options: dict[str, str], width: int, height: int, timecode: str | None = None) -> Path:
    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV build has no {codec} encoder")
    container = av.open(str(path), "w")
    if timecode:
        container.metadata["timecode"] = timecode
    stream = container.add_stream(codec, rate=NTSC_FILM)
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    stream.options = options
    # Encode with the BT.709 matrix, limited range, and say so in the stream:
    # left to itself PyAV converts with BT.601 while DNxHR tags BT.709.
    stream.codec_context.colorspace = 1
    stream.codec_context.color_range = 1
    for i in range(FRAMES):
        rgb = np.zeros((height, width, 3), np.uint8)
        rgb[:, :, 1] = 20 * i
        rgb[:, : width // 2, 0] = 200
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
            format=pix_fmt, dst_colorspace=1, dst_color_range=1
        )
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def _index(image: np.ndarray) -> int:
    """The frame index encoded in the clip (green = 20 * i), from a flat patch."""
    return int(round(float(np.median(image[:, -8:, 1])) * 255 / 20))


@pytest.mark.parametrize("name, codec, pix_fmt, options, width, height", CODECS, ids=[c[0] for c in CODECS])
def test_codecs_stream_in_order(tmp_path: Path, name, codec, pix_fmt, options, width, height) -> None:
    path = _make(tmp_path / name, codec, pix_fmt, options, width, height)
    with MovieReader(path) as reader:
        assert reader.frame_count == FRAMES
        assert reader.fps == NTSC_FILM
        assert (reader.header.display_window.width, reader.header.display_window.height) == (width, height)
        frames = list(reader.frames())
        assert [_index(f) for f in frames] == list(range(FRAMES))
        assert frames[0].shape == (height, width, 3) and frames[0].dtype == np.float32
        assert 0.0 <= frames[3].min() and frames[3].max() <= 1.0
        # Random access: backwards and forwards, each lands on the asked frame.
        assert [_index(reader.read(i)) for i in (9, 2, 11, 0, 5)] == [9, 2, 11, 0, 5]


def test_sequential_reads_do_not_seek(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _make(tmp_path / "seq.mp4", "libx264", "yuv420p", {"g": "4"}, 64, 48)
    with MovieReader(path) as reader:
        seeks: list[int] = []
        real = reader._seek
        monkeypatch.setattr(reader, "_seek", lambda index: seeks.append(index) or real(index))
        for i in range(FRAMES):
            reader.read(i)
        assert seeks == [0]  # only the first read positions the decoder
        reader.read(3)
        assert seeks == [0, 3]


def test_movie_plate_frame_numbers_and_timecode(tmp_path: Path) -> None:
    path = _make(tmp_path / "tc.mov", "prores_ks", "yuv422p10le", {"profile": "3"}, 64, 48, timecode="01:00:10:05")
    with open_plate(str(path)) as plate:
        info = plate.info
        assert (info.kind, info.first, info.last) == ("movie", 1001, 1012)
        assert info.timecode == "01:00:10:05" and info.fps == NTSC_FILM
        assert plate.frame_path(1001) is None
        assert _index(plate.read(1004)) == 3
        assert plate.info.header.attributes["codec"] == "prores"
        assert "color_primaries" in plate.info.header.attributes
    with open_plate(str(path), first=1, last=6) as plate:
        assert (plate.info.first, plate.info.last) == (1, 6)
        assert _index(plate.read(6)) == 5
        with pytest.raises(InputError, match="outside the plate"):
            plate.read(7)
    with pytest.raises(InputError, match="last frame 2000 is beyond it"):
        open_plate(str(path), last=2000)


def test_broken_movie(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mov"
    bad.write_bytes(b"not a movie at all" * 10)
    with pytest.raises(InputError, match="not a readable movie"):
        MovieReader(bad)
    with pytest.raises(InputError, match="movie not found"):
        open_plate(str(tmp_path / "none.mov"))
