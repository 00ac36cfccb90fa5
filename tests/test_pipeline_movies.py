"""Movies in and out of the pipeline: a ProRes plate keeps its frames, fps and timecode."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from engine.colour import Colour
from engine.errors import InputError
from engine.io.exr import read_header
from engine.io.movie_write import MovieWriter
from engine.io.plates import open_plate
from engine.job import parse_job
from engine.pipeline import RunOptions, run_job
from tests.plate_factory import write_plate

FPS = Fraction(24000, 1001)


def prores_plate(path: Path, count: int = 12) -> str:
    """A ProRes 422 HQ movie at 23.976 with timecode 01:00:00:00: a bar that moves one step a frame."""
    with MovieWriter(str(path), codec="prores_422hq", fps=FPS, width=128, height=72, colour="rec709",
                     timecode="01:00:00:00") as movie:
        for i in range(count):
            frame = np.full((72, 128, 3), 0.2, np.float32)
            frame[:, 8 * i:8 * i + 8] = 0.9
            movie.write(frame)
    return str(path)


def grade_job(plate: str, output: dict, **plate_fields) -> dict:
    return {"plate": {"path": plate, **plate_fields}, "transform": "grade",
            "keyframes": [{"frame": 1001, "grade": {"saturation": 0.8}}], "output": output}


def test_prores_plate_to_exr_keeps_frames_fps_and_timecode(tmp_path):
    movie = prores_plate(tmp_path / "plate.mov")
    out = tmp_path / "out" / "shot.####.exr"
    result = run_job(parse_job(grade_job(movie, {"path": str(out)})))
    assert result.rendered == list(range(1001, 1013))
    with open_plate(movie) as src, open_plate(str(out)) as dst:
        assert (dst.info.first, dst.info.last, dst.info.frame_count) == (src.info.first, src.info.last, 12)
        assert dst.info.fps == src.info.fps == FPS
        assert dst.info.timecode == src.info.timecode == "01:00:00:00"
        # The motion is kept frame for frame: the bright bar sits where the source has it.
        for frame in (1001, 1006, 1012):
            column = int(np.argmax(dst.read(frame)[36, :, 1]))
            assert 8 * (frame - 1001) <= column < 8 * (frame - 1001) + 8
    assert read_header(str(out).replace("####", "1012")).timecode == "01:00:00:11"


def test_sdr_prores_movie_and_png_sequence_out(tmp_path):
    plate = write_plate(tmp_path / "plate", count=6, width=128, height=72, fps=Fraction(25),
                        timecode="10:00:00:00")
    mov = tmp_path / "sdr.mov"
    run_job(parse_job(grade_job(plate, {"path": str(mov), "format": "sdr"})))
    with av.open(str(mov)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "prores" and stream.average_rate == 25
        assert stream.codec_context.color_primaries == 1 and stream.codec_context.color_trc == 1  # BT.709
        assert sum(1 for _ in container.decode(stream)) == 6
        timecode = stream.metadata.get("timecode") or container.metadata.get("timecode")
        assert timecode == "10:00:00:00"
    pngs = tmp_path / "png" / "sdr.####.png"
    run_job(parse_job(grade_job(plate, {"path": str(pngs), "format": "sdr"})))
    with open_plate(str(pngs)) as seq:
        assert (seq.info.first, seq.info.last, seq.info.header.pixel_type) == (1001, 1006, "uint16")


def test_hdr_pq_movie_out_keeps_highlights_above_sdr(tmp_path):
    plate = write_plate(tmp_path / "plate", count=3, width=128, height=72)
    mov = tmp_path / "hdr.mov"
    run_job(parse_job(grade_job(plate, {"path": str(mov), "format": "hdr"})))
    with av.open(str(mov)) as container:
        ctx = container.streams.video[0].codec_context
        assert ctx.name == "prores" and ctx.color_primaries == 9 and ctx.color_trc == 16  # BT.2020, SMPTE ST 2084
        assert sum(1 for _ in container.decode(video=0)) == 3


def test_movie_output_refuses_farm_chunks(tmp_path):
    plate = write_plate(tmp_path / "plate", count=3)
    with pytest.raises(InputError, match="chunks"):
        run_job(parse_job(grade_job(plate, {"path": str(tmp_path / "o.mov"), "format": "sdr"})),
                RunOptions(frames=(1002, 1003)))
    assert not (tmp_path / "o.mov").exists()


def test_colour_round_trip_through_the_aces_exr_is_within_half_precision(tmp_path):
    colour = Colour()
    rng = np.random.default_rng(3)
    acescg = (rng.random((24, 32, 3), dtype=np.float32) * 20.0 - 0.5).astype(np.float32)
    acescg[0, 0] = (1.0, 0.5, 0.25)
    from engine.io.writers import OutputSpec, open_writer

    writer = open_writer(OutputSpec(path=str(tmp_path / "rt.####.exr"), format="exr"), colour,
                         fps=Fraction(24), width=32, height=24, has_alpha=False)
    writer.write(1, acescg, {"frame": "1"})
    writer.close()
    with open_plate(str(tmp_path / "rt.####.exr")) as plate:
        stored = plate.read(1)
        assert plate.info.header.aces_container
    np.testing.assert_allclose(stored[0, 0], (0.80676, 0.49851, 0.24686), atol=5e-4)
    back = colour.to_working(stored, "ACES2065-1")
    # Half keeps 11 significant bits of each stored AP0 value; the matrix back to AP1 mixes the
    # channels, so a pixel's error is bounded by half precision of its largest channel.
    bound = 2.0 ** -11 * 2.0 * np.abs(acescg).max(axis=-1, keepdims=True) + 1e-6
    assert (np.abs(back - acescg) <= bound).all(), float((np.abs(back - acescg) / bound).max())
