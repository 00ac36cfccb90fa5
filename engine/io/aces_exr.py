"""Half-float OpenEXR output, optionally as an ACES container (SMPTE ST 2065-4).

An ACES container file is a strict subset of OpenEXR: scanline, HALF channels
R, G, B (and A), **no compression**, chromaticities = ACES AP0 and the int
attribute ``acesImageContainerFlag`` = 1 (plus pixelAspectRatio 1 and
INCREASING_Y line order, as the reference writer does). A compressed file is a
perfectly good ACES2065-1 EXR (Netflix takes PIZ/ZIP) but it is *not* a
container file and must not carry the flag: OpenImageIO's strict policy
rejects a flagged file with compression.

Written with OpenEXR 3.5's Python API (``OpenEXR.File(header, channels)``).
Files are deterministic: no timestamps, no host names, attributes only from
the arguments, so the same pixels and metadata give byte-identical files.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from fractions import Fraction

import numpy as np
import OpenEXR

from engine.host_threads import available_cpus
from engine.io.header import AP0, Chromaticities

COMPRESSIONS: dict[str, OpenEXR.Compression] = {
    "none": OpenEXR.NO_COMPRESSION,
    "rle": OpenEXR.RLE_COMPRESSION,
    "zips": OpenEXR.ZIPS_COMPRESSION,
    "zip": OpenEXR.ZIP_COMPRESSION,
    "piz": OpenEXR.PIZ_COMPRESSION,
    "pxr24": OpenEXR.PXR24_COMPRESSION,
    "b44": OpenEXR.B44_COMPRESSION,
    "b44a": OpenEXR.B44A_COMPRESSION,
    "dwaa": OpenEXR.DWAA_COMPRESSION,
    "dwab": OpenEXR.DWAB_COMPRESSION,
}

# Attributes write_exr sets itself; metadata may not override them.
_RESERVED = {
    "channels", "compression", "dataWindow", "displayWindow", "lineOrder", "pixelAspectRatio",
    "screenWindowCenter", "screenWindowWidth", "type", "chromaticities", "acesImageContainerFlag",
    "framesPerSecond", "timeCode",
}

_TIMECODE_RE = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})([:;.,])(\d{2,3})$")


def parse_timecode(timecode: str) -> tuple[int, int, int, int, bool]:
    """"HH:MM:SS:FF" (";" before the frames = drop frame) -> (h, m, s, f, drop_frame)."""
    match = _TIMECODE_RE.match(timecode.strip())
    if match is None:
        raise ValueError(f"timecode {timecode!r} is not HH:MM:SS:FF")
    hours, minutes, seconds, sep, frames = match.groups()
    return int(hours), int(minutes), int(seconds), int(frames), sep in ";,"


def _exr_timecode(timecode: str) -> OpenEXR.TimeCode:
    hours, minutes, seconds, frames, drop = parse_timecode(timecode)
    # (hours, minutes, seconds, frame, dropFrame, colorFrame, fieldPhase,
    #  bgf0, bgf1, bgf2, binaryGroup1..8): the SMPTE 12M fields OpenEXR stores.
    return OpenEXR.TimeCode(hours, minutes, seconds, frames, int(drop), 0, 0, 0, 0, 0, *([0] * 8))


def _timecode_text(tc: OpenEXR.TimeCode) -> str:
    sep = ";" if tc.dropFrame else ":"
    return f"{tc.hours:02d}:{tc.minutes:02d}:{tc.seconds:02d}{sep}{tc.frame:02d}"


def _chroma_tuple(chroma: Chromaticities) -> tuple[float, ...]:
    return (*chroma.red, *chroma.green, *chroma.blue, *chroma.white)


def is_container_compatible(compression: str, chromaticities: Chromaticities) -> bool:
    """Whether a file with this compression and these primaries can be an ST 2065-4 container."""
    return compression == "none" and chromaticities.close_to(AP0, 1e-6)


def write_exr(
    path: str,
    pixels: np.ndarray,
    *,
    chromaticities: Chromaticities | None,
    aces_container: bool,
    compression: str = "none",
    metadata: Mapping[str, str | int | Fraction] | None = None,
    fps: Fraction | None = None,
    timecode: str | None = None,
    frame: int | None = None,
) -> None:
    """Write one scanline half-float EXR with channels R, G, B (and A).

    pixels: (H, W, 3|4) float32, already in the colour space whose primaries
    ``chromaticities`` gives (None: no attribute; readers then assume
    Rec.709). Finite values beyond the half range saturate at +/-65504
    instead of becoming infinities; nothing else is clamped; NaN and inf
    given by the caller are written unchanged.

    ``aces_container=True`` demands compression "none" and AP0
    chromaticities (ValueError otherwise) and sets
    ``acesImageContainerFlag`` = 1. ``metadata`` values: str -> string
    attribute, int -> int attribute, Fraction -> rational attribute; use
    namespaced keys (``retake/jobHash``). ``frame`` is stored as
    ``retake/frame``. The caller handles atomicity (write to a temp path).
    """
    if pixels.ndim != 3 or pixels.shape[-1] not in (3, 4):
        raise ValueError(f"expected (H, W, 3) or (H, W, 4) pixels, got shape {pixels.shape}")
    compression = compression.lower()
    if compression not in COMPRESSIONS:
        raise ValueError(f"unknown EXR compression {compression!r}; use one of {', '.join(COMPRESSIONS)}")
    if aces_container:
        if compression != "none":
            raise ValueError(
                f"an ACES container (SMPTE ST 2065-4) must be uncompressed, not {compression!r}"
            )
        if chromaticities is None or not chromaticities.close_to(AP0, 1e-6):
            raise ValueError("an ACES container (SMPTE ST 2065-4) must declare ACES AP0 chromaticities")
        long_names = [k for k in (metadata or {}) if len(k) > 31]
        if long_names:
            # ST 2065-4 files are OpenEXR version 2 without the long-names flag.
            raise ValueError(f"an ACES container allows attribute names of 31 characters at most: {long_names}")

    header: dict[str, object] = {
        "type": OpenEXR.scanlineimage,
        "compression": COMPRESSIONS[compression],
        "lineOrder": OpenEXR.INCREASING_Y,
        "pixelAspectRatio": 1.0,
    }
    if chromaticities is not None:
        header["chromaticities"] = _chroma_tuple(chromaticities)
    if aces_container:
        header["acesImageContainerFlag"] = 1
    if fps is not None:
        # OpenEXR's binding stores a Fraction as a rational attribute (24000/1001).
        header["framesPerSecond"] = Fraction(fps)
    if timecode is not None:
        header["timeCode"] = _exr_timecode(timecode)
    for key, value in sorted((metadata or {}).items()):
        if key in _RESERVED:
            raise ValueError(f"metadata key {key!r} is set by write_exr itself")
        if isinstance(value, bool) or not isinstance(value, (str, int, Fraction)):
            raise TypeError(f"metadata {key!r}: only str, int and Fraction are stored, got {type(value).__name__}")
        header[key] = value
    if frame is not None:
        header["retake/frame"] = int(frame)

    # Finite values beyond the half range saturate rather than overflow (an
    # inf poisons every filter downstream in Nuke and Resolve). A NaN or inf
    # the caller passes is written as is: sanitising is the pipeline's call.
    clipped = np.clip(pixels, -65504.0, 65504.0)
    half = np.where(np.isfinite(pixels), clipped, pixels).astype(np.float16, order="C")
    # "RGB"/"RGBA" with an (H, W, 3|4) array makes the binding split it into
    # the channels R, G, B(, A) (stored alphabetically, as EXR requires).
    key = "RGBA" if half.shape[-1] == 4 else "RGB"
    # OpenEXR's global thread pool compresses chunks in parallel; the bytes
    # do not depend on the thread count (chunks are independent).
    _use_a_thread_pool()
    OpenEXR.File(header, {key: half}).write(path)


def _use_a_thread_pool() -> None:
    """Give OpenEXR's global pool a thread per CPU, unless someone set it already.

    The Python binding starts with none (``global_thread_count() == 0``): every chunk was
    compressed on the caller's thread. With the 2 CPUs here a 1080p PIZ write went from
    110 to 84 ms and DWAA from 229 to 165 (uncompressed is the same: 40 against 38)."""
    if OpenEXR.global_thread_count() == 0:
        OpenEXR.set_global_thread_count(available_cpus())


def read_exr_attributes(path: str) -> dict[str, object]:
    """The header attributes of an EXR (first part), read without pixels.

    Values: str, int, float, Fraction (framesPerSecond), Chromaticities
    (``chromaticities``), "HH:MM:SS:FF" (``timeCode``), names for
    compression/lineOrder; anything else as the binding returns it.
    """
    exr = OpenEXR.File(path, header_only=True)
    out: dict[str, object] = {}
    for key, value in exr.header().items():
        if key == "chromaticities":
            v = [float(x) for x in value]
            out[key] = Chromaticities((v[0], v[1]), (v[2], v[3]), (v[4], v[5]), (v[6], v[7]))
        elif key == "timeCode":
            out[key] = _timecode_text(value)
        elif key == "compression":
            out[key] = next((name for name, c in COMPRESSIONS.items() if c == value), str(value))
        elif key == "lineOrder":
            out[key] = "increasingY" if value == OpenEXR.INCREASING_Y else str(value)
        elif key == "channels":
            out[key] = [ch.name for ch in value]
        else:
            out[key] = value
    return out
