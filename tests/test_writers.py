"""Movie writer round trips and the pipeline's frame writers."""
from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import OpenImageIO as oiio
import pytest

import engine.io.writers as writers_module
from engine.colour import Colour
from engine.errors import InputError
from engine.io.aces_exr import read_exr_attributes
from engine.io.header import AP0, AP1
from engine.io.movie_write import MovieWriter, codec_available
from engine.io.writers import OutputSpec, open_writer

W, H = 64, 32
FPS = Fraction(24000, 1001)
# Published inverse matrices (R'G'B' from Y'PbPr), independent of the writer's code.
INVERSE = {
    "rec709": ((1.5748, 0.0), (-0.1873, -0.4681), (0.0, 1.8556)),
    "rec2100pq": ((1.4746, 0.0), (-0.16455, -0.57135), (0.0, 1.8814)),
}


@pytest.fixture(scope="module")
def colour() -> Colour:
    return Colour()


def patches() -> np.ndarray:
    """(H, W, 3) float32 0..1: flat 16x16 patches, so chroma subsampling is exact inside them."""
    rng = np.random.default_rng(3)
    grid = rng.random((H // 16, W // 16, 3), dtype=np.float32)
    grid[0, 0] = (0.0, 0.0, 0.0)
    grid[0, 1] = (1.0, 1.0, 1.0)
    return np.repeat(np.repeat(grid, 16, axis=0), 16, axis=1)


def decode_rgb(frame: av.VideoFrame, colour: str) -> np.ndarray:
    """Decode planes ourselves: limited-range Y'CbCr -> R'G'B' with the published matrix."""
    bits = 12 if "12" in frame.format.name else 10
    scale = 2 ** (bits - 10)
    planes = []
    for plane in frame.planes[:3]:
        rows = np.frombuffer(plane, dtype=np.uint16).reshape(-1, plane.line_size // 2)[: plane.height, : plane.width]
        planes.append(rows.astype(np.float64) / scale)
    y, cb, cr = planes
    sx, sy = frame.width // cb.shape[1], frame.height // cb.shape[0]
    cb = np.repeat(np.repeat(cb, sy, axis=0), sx, axis=1)
    cr = np.repeat(np.repeat(cr, sy, axis=0), sx, axis=1)
    yn, pb, pr = (y - 64) / 876, (cb - 512) / 896, (cr - 512) / 896
    (rr, _), (gb, gr), (_, bb) = INVERSE[colour]
    return np.stack([yn + rr * pr, yn + gb * pb + gr * pr, yn + bb * pb], axis=-1)


def interior(a: np.ndarray) -> np.ndarray:
    return a.reshape(H // 16, 16, W // 16, 16, -1)[:, 4:12, :, 4:12]


def write_movie(path: Path, codec: str, colour: str, frames: int = 5) -> np.ndarray:
    image = patches()
    with MovieWriter(str(path), codec=codec, fps=FPS, width=W, height=H, colour=colour, timecode="01:00:00:00") as mw:
        assert not path.exists()  # under a temp name until close
        for _ in range(frames):
            mw.write(image)
    return image


def check_movie(path: Path, image: np.ndarray, *, codec_name: str, profile: str, pix_fmt: str,
                tags: tuple[str, str, str], colour: str, frames: int = 5) -> None:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        assert ctx.name == codec_name
        assert ctx.profile == profile
        assert ctx.pix_fmt == pix_fmt
        # AVCOL_* numbers: 1 = bt709, 9 = bt2020 / bt2020nc, 16 = smpte2084.
        assert (ctx.color_primaries, ctx.color_trc, ctx.colorspace) == tags
        assert ctx.color_range == 1  # tv / limited
        assert stream.average_rate == FPS
        assert stream.frames == frames
        assert stream.metadata.get("timecode") == "01:00:00:00"
        decoded = list(container.decode(video=0))
    assert len(decoded) == frames
    ours = decode_rgb(decoded[0], colour)
    # Flat patches, 10-bit: a couple of code values from rounding and the codec.
    assert np.abs(interior(ours - image)).max() < 3.0 / 1023
    # Cross-check with FFmpeg's own conversion (swscale is less precise).
    space = "ITU709" if colour == "rec709" else "BT2020"
    theirs = decoded[-1].reformat(format="rgb48le", src_colorspace=space, src_color_range="MPEG").to_ndarray() / 65535.0
    assert np.abs(interior(theirs - image)).max() < 8.0 / 1023


def test_prores_422hq_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sdr.mov"
    image = write_movie(path, "prores_422hq", "rec709")
    check_movie(path, image, codec_name="prores", profile="HQ", pix_fmt="yuv422p10le",
                tags=(1, 1, 1), colour="rec709")
    assert [p.name for p in tmp_path.iterdir()] == ["sdr.mov"]


def test_prores_4444_pq_tags(tmp_path: Path) -> None:
    path = tmp_path / "hdr.mov"
    image = write_movie(path, "prores_4444", "rec2100pq", frames=3)
    # The FFmpeg ProRes decoder hands 4444 out as 12-bit.
    check_movie(path, image, codec_name="prores", profile="4444", pix_fmt="yuv444p12le",
                tags=(9, 16, 9), colour="rec2100pq", frames=3)


@pytest.mark.skipif(not codec_available("hevc_main10"), reason="this PyAV build has no libx265")
def test_hevc_main10_pq(tmp_path: Path) -> None:
    path = tmp_path / "hdr.mp4"
    image = write_movie(path, "hevc_main10", "rec2100pq", frames=3)
    with av.open(str(path)) as container:
        ctx = container.streams.video[0].codec_context
        assert ctx.name == "hevc" and ctx.profile == "Main 10" and ctx.pix_fmt == "yuv420p10le"
        assert (ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range) == (9, 16, 9, 1)
        frame = next(container.decode(video=0))
    # Lossy, but flat patches at crf 12 stay close.
    assert np.abs(interior(decode_rgb(frame, "rec2100pq") - image)).max() < 12.0 / 1023


def test_movie_abort_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "killed.mov"
    with pytest.raises(RuntimeError):
        with MovieWriter(str(path), codec="prores_422hq", fps=FPS, width=W, height=H, colour="rec709") as mw:
            mw.write(patches())
            assert len(list(tmp_path.iterdir())) == 1  # the hidden temp
            raise RuntimeError("render killed")
    assert list(tmp_path.iterdir()) == []


# -- pipeline writers ---------------------------------------------------------------------


def frame_pixels(alpha: bool = False) -> np.ndarray:
    rng = np.random.default_rng(5)
    px = rng.random((H, W, 4 if alpha else 3), dtype=np.float32) * 2.0
    px[0, 0, :3] = (1000.0, -0.5, 0.18)
    return px


META = {"frame": "1001", "job_hash": "hash-1", "source_file": "/plates/p.1001.exr", "timecode": "00:00:41:17"}


@pytest.mark.parametrize("pattern, name", [("out.####.exr", "out.1001.exr"), ("out.%04d.exr", "out.1001.exr"),
                                           ("out_@@@@@.exr", "out_01001.exr")])
def test_exr_sequence_container(tmp_path: Path, colour: Colour, pattern: str, name: str) -> None:
    writer = open_writer(OutputSpec(str(tmp_path / pattern), "exr"), colour, fps=FPS, width=W, height=H, has_alpha=False)
    assert writer.frame_path(1001) == str(tmp_path / name)
    assert writer.describe() == "ACES2065-1 half-float EXR, SMPTE ST 2065-4 container, uncompressed"
    assert not writer.is_complete(1001, "hash-1")
    px = frame_pixels()
    writer.write(1001, px, META)
    writer.close()
    assert writer.is_complete(1001, "hash-1") and not writer.is_complete(1001, "hash-2")
    attrs = read_exr_attributes(writer.frame_path(1001))
    assert attrs["acesImageContainerFlag"] == 1 and attrs["chromaticities"].close_to(AP0, 1e-6)
    assert attrs["retake/sourceFile"] == "/plates/p.1001.exr" and attrs["retake/frame"] == 1001
    assert attrs["timeCode"] == "00:00:41:17" and attrs["framesPerSecond"] == FPS
    assert attrs["channels"] == ["B", "G", "R"]
    inp = oiio.ImageInput.open(writer.frame_path(1001))
    back = inp.read_image(oiio.FLOAT)
    inp.close()
    expected = colour.from_working(px, "ACES2065-1")
    np.testing.assert_allclose(back, expected, rtol=1e-3, atol=1e-3)
    assert sorted(os.listdir(tmp_path)) == [name]


def test_exr_piz_and_acescg(tmp_path: Path, colour: Colour) -> None:
    piz = open_writer(OutputSpec(str(tmp_path / "p.####.exr"), "exr", compression="piz"), colour,
                      fps=FPS, width=W, height=H, has_alpha=True)
    assert "PIZ-compressed: not an ST 2065-4 container" in piz.describe()
    piz.write(1, frame_pixels(alpha=True), META)
    attrs = read_exr_attributes(piz.frame_path(1))
    assert "acesImageContainerFlag" not in attrs and attrs["compression"] == "piz"
    assert attrs["channels"] == ["A", "B", "G", "R"]
    cg = open_writer(OutputSpec(str(tmp_path / "cg.####.exr"), "exr", colorspace="lin_ap1"), colour,
                     fps=FPS, width=W, height=H, has_alpha=False)
    assert cg.describe().startswith("ACEScg half-float EXR, uncompressed")
    cg.write(1, frame_pixels(), META)
    attrs = read_exr_attributes(cg.frame_path(1))
    assert "acesImageContainerFlag" not in attrs and attrs["chromaticities"].close_to(AP1, 1e-6)


def test_exr_write_is_atomic(tmp_path: Path, colour: Colour, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = open_writer(OutputSpec(str(tmp_path / "a.####.exr"), "exr"), colour, fps=FPS, width=W, height=H,
                         has_alpha=False)
    real = writers_module.write_exr

    def dying(path: str, *args, **kwargs) -> None:
        real(path, *args, **kwargs)  # the temp file is complete on disk ...
        raise KeyboardInterrupt("... and the render dies before the rename")

    monkeypatch.setattr(writers_module, "write_exr", dying)
    with pytest.raises(KeyboardInterrupt):
        writer.write(1001, frame_pixels(), META)
    assert list(tmp_path.iterdir()) == []


def test_png_sequence_16bit(tmp_path: Path, colour: Colour) -> None:
    writer = open_writer(OutputSpec(str(tmp_path / "s.####.png"), "sdr"), colour, fps=FPS, width=W, height=H,
                         has_alpha=True)
    px = frame_pixels(alpha=True)
    writer.write(7, px, dict(META, frame="7"))
    inp = oiio.ImageInput.open(writer.frame_path(7))
    spec = inp.spec()
    data = inp.read_image(oiio.UINT16)
    inp.close()
    assert spec.format == oiio.UINT16 and spec.nchannels == 4
    assert json.loads(spec.get_string_attribute("ImageDescription"))["retake/jobHash"] == "hash-1"
    assert writer.is_complete(7, "hash-1")
    np.testing.assert_array_equal(data[..., 3], np.rint(np.clip(px[..., 3], 0, 1) * 65535))
    # Opaque pixels: exactly the display transform.
    opaque = px.copy()
    opaque[..., 3] = 1.0
    writer.write(8, opaque, META)
    inp = oiio.ImageInput.open(writer.frame_path(8))
    data = inp.read_image(oiio.FLOAT)
    inp.close()
    expected = np.clip(colour.to_display(opaque[..., :3], "sRGB - Display", "ACES 2.0 - SDR 100 nits (Rec.709)"), 0, 1)
    np.testing.assert_allclose(data[..., :3], expected, atol=1.0 / 65535 + 1e-6)


def test_sdr_movie_writer(tmp_path: Path, colour: Colour) -> None:
    path = tmp_path / "review.mov"
    writer = open_writer(OutputSpec(str(path), "sdr"), colour, fps=FPS, width=W, height=H, has_alpha=True)
    assert writer.frame_path(1001) is None and not writer.is_complete(1001, "x")
    assert writer.describe().startswith("ProRes 422 HQ movie, Rec.709")
    for frame in (1001, 1002, 1003):
        writer.write(frame, frame_pixels(alpha=True), dict(META, frame=str(frame)))
    with pytest.raises(InputError, match="consecutive"):
        writer.write(1005, frame_pixels(), META)
    assert not path.exists()
    writer.close()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.frames == 3 and stream.codec_context.profile == "HQ"
        assert stream.metadata.get("timecode") == "00:00:41:17"


def test_movie_close_during_exception_discards(tmp_path: Path, colour: Colour) -> None:
    path = tmp_path / "cancelled.mov"
    writer = open_writer(OutputSpec(str(path), "hdr"), colour, fps=FPS, width=W, height=H, has_alpha=False)
    assert writer.describe().startswith("ProRes 4444 movie, Rec.2100 PQ")
    with pytest.raises(RuntimeError):
        try:
            writer.write(1, frame_pixels(), META)
            raise RuntimeError("cancelled")
        finally:
            writer.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "spec",
    [
        OutputSpec("x.####.png", "exr"),
        OutputSpec("x.mov", "exr"),
        OutputSpec("x.####.exr", "sdr"),
        OutputSpec("x.####.png", "hdr"),
        OutputSpec("x.avi", "sdr"),
        OutputSpec("x.mov", "sdr", colorspace="ACEScg"),
        OutputSpec("x.####.exr", "exr", colorspace="not-a-space"),
        OutputSpec("x.####.exr", "exr", compression="lzw"),
        OutputSpec("x.exr", "exr"),
        OutputSpec("x.####.exr", "jpeg"),
    ],
)
def test_bad_specs(tmp_path: Path, colour: Colour, spec: OutputSpec) -> None:
    spec = OutputSpec(str(tmp_path / spec.path), spec.format, spec.colorspace, spec.compression)
    with pytest.raises(InputError):
        open_writer(spec, colour, fps=FPS, width=W, height=H, has_alpha=False)
