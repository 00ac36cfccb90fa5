"""ACES container EXR output (SMPTE ST 2065-4), determinism and atomic writes."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import OpenEXR
import OpenImageIO as oiio
import pytest

from engine.io.aces_exr import read_exr_attributes, write_exr
from engine.io.atomic import atomic_output, remove_stale_temps, temp_path_for
from engine.io.header import AP0, AP1

METADATA = {"retake/jobHash": "abc123", "retake/sourceFile": "/plates/a.1001.exr"}


def pixels(h: int = 16, w: int = 24, c: int = 3) -> np.ndarray:
    rng = np.random.default_rng(7)
    out = rng.random((h, w, c), dtype=np.float32) * 4.0 - 0.5
    out[0, 0, :3] = (1000.0, -0.5, 0.18)
    return out


@pytest.fixture
def container(tmp_path: Path) -> Path:
    path = tmp_path / "aces.1001.exr"
    write_exr(str(path), pixels(c=4), chromaticities=AP0, aces_container=True, metadata=METADATA,
              fps=Fraction(24000, 1001), timecode="01:00:41:17", frame=1001)
    return path


def test_container_via_openexr(container: Path) -> None:
    exr = OpenEXR.File(str(container), separate_channels=True)
    head = exr.header()
    assert head["acesImageContainerFlag"] == 1
    assert head["compression"] == OpenEXR.NO_COMPRESSION
    assert head["type"] == OpenEXR.scanlineimage
    assert head["lineOrder"] == OpenEXR.INCREASING_Y
    assert head["pixelAspectRatio"] == 1.0
    np.testing.assert_allclose(head["chromaticities"], (*AP0.red, *AP0.green, *AP0.blue, *AP0.white), atol=1e-6)
    assert head["framesPerSecond"] == Fraction(24000, 1001)
    channels = exr.channels()
    assert sorted(channels) == ["A", "B", "G", "R"]
    # Channel types are only known with the pixels (a header-only read can't say).
    assert all(ch.type() == OpenEXR.HALF and ch.pixels.dtype == np.float16 for ch in channels.values())
    np.testing.assert_allclose(channels["R"].pixels.astype(np.float32), pixels(c=4)[..., 0], rtol=1e-3, atol=1e-3)
    assert channels["R"].pixels[0, 0] == 1000.0 and channels["G"].pixels[0, 0] == -0.5


def test_read_exr_attributes(container: Path) -> None:
    attrs = read_exr_attributes(str(container))
    assert attrs["retake/jobHash"] == "abc123"
    assert attrs["retake/frame"] == 1001
    assert attrs["timeCode"] == "01:00:41:17"
    assert attrs["framesPerSecond"] == Fraction(24000, 1001)
    assert attrs["chromaticities"].close_to(AP0, 1e-6)
    assert attrs["compression"] == "none"


def test_container_via_openimageio_strict(container: Path, tmp_path: Path) -> None:
    inp = oiio.ImageInput.open(str(container))
    spec = inp.spec()
    data = inp.read_image(oiio.HALF)
    inp.close()
    assert spec.format == oiio.HALF
    assert spec.get_string_attribute("compression") == "none"
    assert spec.get_int_attribute("acesImageContainerFlag") == 1
    assert spec.get_string_attribute("oiio:ColorSpace") == "lin_ap0_scene"
    assert spec.get_string_attribute("retake/jobHash") == "abc123"
    # OIIO's strict ACES policy refuses to write a flagged file that is not a
    # container; writing our spec back under it must succeed ...
    strict = oiio.ImageSpec(spec)
    strict.attribute("openexr:ACESContainerPolicy", "strict")
    out = oiio.ImageOutput.create(str(tmp_path / "strict.exr"))
    assert out.open(str(tmp_path / "strict.exr"), strict), out.geterror()
    assert out.write_image(data)
    out.close()
    # ... and the check is real: the same spec with PIZ is refused.
    strict.attribute("compression", "piz")
    out = oiio.ImageOutput.create(str(tmp_path / "piz.exr"))
    assert not out.open(str(tmp_path / "piz.exr"), strict)
    assert "ACES" in out.geterror()


def _oiiotool() -> str | None:
    if os.path.exists("/usr/bin/oiiotool"):
        return "/usr/bin/oiiotool"
    local = Path(sys.executable).parent / "oiiotool"
    return str(local) if local.exists() else shutil.which("oiiotool")


def test_container_via_oiiotool_cli(container: Path) -> None:
    tool = _oiiotool()
    if tool is None:
        pytest.skip("no oiiotool (apt-get install openimageio-tools, or the OpenImageIO wheel's)")
    text = subprocess.run([tool, "--info", "-v", str(container)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"4 channel, half openexr", text)
    assert re.search(r"channel list: R, G, B, A", text)
    assert re.search(r"acesImageContainerFlag: 1\b", text)
    assert re.search(r'compression: "none"', text)
    assert re.search(r"chromaticities: 0\.7347, 0\.2653, 0, 1, 0\.0001, -0\.077, 0\.32168, 0\.33767", text)
    assert re.search(r"framesPerSecond: 24000/1001", text)
    assert re.search(r"smpte:TimeCode: 01:00:41:17", text)
    assert re.search(r'retake/jobHash: "abc123"', text)


def test_deterministic_bytes(tmp_path: Path) -> None:
    paths = [tmp_path / f"d{i}.exr" for i in range(2)]
    for path in paths:
        write_exr(str(path), pixels(), chromaticities=AP0, aces_container=True, metadata=METADATA,
                  fps=Fraction(24), timecode="00:00:00:00", frame=1)
    assert paths[0].read_bytes() == paths[1].read_bytes()


@pytest.mark.parametrize("compression", ["piz", "dwaa", "none"])
def test_writes_use_a_thread_pool_and_the_bytes_do_not_depend_on_it(tmp_path: Path, compression: str) -> None:
    # Many chunks (PIZ: 32 lines each), so the pool really splits the frame.
    image = pixels(h=300, w=200)
    before = OpenEXR.global_thread_count()
    try:
        OpenEXR.set_global_thread_count(0)
        write_exr(str(tmp_path / "first.exr"), image, chromaticities=AP0, aces_container=False,
                  compression=compression)
        assert OpenEXR.global_thread_count() >= 1          # the binding had none: the engine made one
        OpenEXR.set_global_thread_count(3)                  # set by a host: kept
        write_exr(str(tmp_path / "three.exr"), image, chromaticities=AP0, aces_container=False,
                  compression=compression)
        assert OpenEXR.global_thread_count() == 3
        OpenEXR.set_global_thread_count(1)
        write_exr(str(tmp_path / "one.exr"), image, chromaticities=AP0, aces_container=False,
                  compression=compression)
    finally:
        OpenEXR.set_global_thread_count(before)
    first = (tmp_path / "first.exr").read_bytes()
    assert first == (tmp_path / "three.exr").read_bytes() == (tmp_path / "one.exr").read_bytes()


@pytest.mark.parametrize("compression", ["piz", "zip", "zips", "dwaa"])
def test_compressed_is_not_a_container(tmp_path: Path, compression: str) -> None:
    path = tmp_path / "c.exr"
    with pytest.raises(ValueError, match="uncompressed"):
        write_exr(str(path), pixels(), chromaticities=AP0, aces_container=True, compression=compression)
    write_exr(str(path), pixels(), chromaticities=AP0, aces_container=False, compression=compression)
    attrs = read_exr_attributes(str(path))
    assert "acesImageContainerFlag" not in attrs
    assert attrs["compression"] == compression


def test_container_needs_ap0(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="AP0"):
        write_exr(str(tmp_path / "x.exr"), pixels(), chromaticities=AP1, aces_container=True)


def test_huge_values_saturate_not_inf(tmp_path: Path) -> None:
    path = tmp_path / "big.exr"
    data = pixels()
    data[1, 1] = (1e6, -1e6, 70000.0)
    data[2, 2] = (np.inf, np.nan, 1.0)
    write_exr(str(path), data, chromaticities=AP1, aces_container=False)
    back = OpenEXR.File(str(path)).channels()["RGB"].pixels
    assert (back[1, 1] == (65504.0, -65504.0, 65504.0)).all()
    # What the caller passes as non-finite stays so (sanitising is the pipeline's call).
    assert np.isposinf(back[2, 2, 0]) and np.isnan(back[2, 2, 1])
    back[2, 2] = 0.0
    assert np.isfinite(back).all()


# -- atomic output ---------------------------------------------------------------


def test_atomic_exception_leaves_nothing(tmp_path: Path) -> None:
    final = tmp_path / "out.1001.exr"
    with pytest.raises(RuntimeError):
        with atomic_output(str(final)) as tmp:
            assert tmp.endswith(".exr") and os.path.basename(tmp).startswith(".")
            assert os.path.dirname(tmp) == str(tmp_path)
            write_exr(tmp, pixels(), chromaticities=AP0, aces_container=True)
            assert os.path.exists(tmp) and not final.exists()
            raise RuntimeError("killed mid-render")
    assert list(tmp_path.iterdir()) == []


def test_atomic_replaces_existing(tmp_path: Path) -> None:
    final = tmp_path / "out.exr"
    final.write_bytes(b"old")
    with atomic_output(str(final)) as tmp:
        write_exr(tmp, pixels(), chromaticities=AP0, aces_container=True)
    assert read_exr_attributes(str(final))["acesImageContainerFlag"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["out.exr"]


def test_remove_stale_temps(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".shot.1001.retake-tmp-{dead.pid}.exr"
    stale.write_bytes(b"partial")
    mine = Path(temp_path_for(str(tmp_path / "shot.1002.exr")))
    mine.write_bytes(b"in progress")
    other = tmp_path / "shot.1003.exr"
    other.write_bytes(b"done")
    removed = remove_stale_temps(str(tmp_path))
    assert removed == [str(stale)]
    assert mine.exists() and other.exists() and not stale.exists()
