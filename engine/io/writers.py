"""The output side of a render: colour-convert, encode and write each frame atomically.

Three kinds of output (``OutputSpec.format``), chosen container by extension:

=======  =====================  =============================================
format   path extension          what is written
=======  =====================  =============================================
exr      ``.exr`` (sequence)     half-float EXR in ``colorspace`` (default
                                 ACES2065-1): an SMPTE ST 2065-4 ACES container
                                 when ACES2065-1 *and* uncompressed
sdr      ``.mov``                ProRes 422 HQ, BT.1886 Rec.709, ACES 2.0 SDR view
sdr      ``.png``/``.tif(f)``    16-bit sequence, sRGB display, ACES 2.0 SDR view
hdr      ``.mov``                ProRes 4444, Rec.2100 PQ, ACES 2.0 HDR 1000 nits
hdr      ``.mp4`` (or ``.mov``   HEVC Main10, Rec.2100 PQ
         with codec hevc_main10)
=======  =====================  =============================================

Every writer takes frames in the working space ((H, W, 3|4) float32
scene-linear ACEScg) and does its own colour conversion through ``Colour``.
Sequence frames are written to a hidden temp file and renamed into place, so a
frame on disk is always complete, and its header carries the job hash that
``is_complete`` checks on resume. Movies are renamed into place at ``close()``.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

import numpy as np
import OpenImageIO as oiio

from engine.colour import HDR_DISPLAY, HDR_VIEW, SDR_DISPLAY, SDR_VIEW, Colour
from engine.errors import InputError
from engine.io.aces_exr import COMPRESSIONS, is_container_compatible, read_exr_attributes, write_exr
from engine.io.atomic import atomic_output, remove_stale_temps
from engine.io.header import AP0, AP1, P3D65, REC709, REC2020, Chromaticities
from engine.io.movie_write import MovieWriter, codec_available
from engine.io.sequences import format_frame_path

_CONTAINERS = {".exr": "exr", ".png": "png", ".tif": "tiff", ".tiff": "tiff", ".mov": "mov", ".mp4": "mp4"}

# Primaries of the colour spaces an EXR is usually written in; the EXR
# ``chromaticities`` attribute must say them. Log encodings (ACEScct) are
# still AP1 primaries.
_PRIMARIES_OF: dict[str, Chromaticities] = {
    "ACES2065-1": AP0,
    "ACEScg": AP1,
    "ACEScct": AP1,
    "ACEScc": AP1,
    "Linear Rec.709 (sRGB)": REC709,
    "Linear Rec.2020": REC2020,
    "Linear P3-D65": P3D65,
}

_MOVIE_CODEC_NAMES = {
    "prores_422hq": "ProRes 422 HQ",
    "prores_4444": "ProRes 4444",
    "hevc_main10": "HEVC Main10",
}
_MOVIE_SAMPLING = {"prores_422hq": "4:2:2", "prores_4444": "4:4:4", "hevc_main10": "4:2:0"}

# Pipeline metadata keys -> EXR attribute names (namespaced, camelCase).
_EXR_KEYS = {"job_hash": "retake/jobHash", "source_file": "retake/sourceFile", "retake_version": "retake/version"}


@dataclass(frozen=True)
class OutputSpec:
    """What to write. ``container`` follows from the extension of ``path``.

    path: a sequence pattern (``out/shot.####.exr``, ``%04d``, ``@@@@``) or a
    movie path. format: "exr", "sdr" or "hdr". colorspace: EXR only, any
    name/alias/role of the config (default: the ``aces_interchange`` role,
    ACES2065-1). compression: EXR only ("none", "piz", "zip", "zips",
    "dwaa", ...). codec: movies only, to pick HEVC Main10 in a ``.mov``
    (default: from format and extension). display/view: override the
    OCIO display and view of SDR/HDR outputs.
    """

    path: str
    format: str
    colorspace: str | None = None
    compression: str = "none"
    codec: str | None = None
    display: str | None = None
    view: str | None = None

    @property
    def container(self) -> str:
        ext = os.path.splitext(self.path)[1].lower()
        if ext not in _CONTAINERS:
            raise InputError(
                f"unknown output file type {ext or '(no extension)'!r}",
                path=self.path,
                hint="use .exr, .png, .tif or .tiff for a sequence, .mov or .mp4 for a movie",
            )
        return _CONTAINERS[ext]


class FrameWriter(Protocol):
    """What the pipeline writes frames through."""

    def frame_path(self, frame: int) -> str | None:
        """The file of ``frame`` (None for a movie)."""

    def is_complete(self, frame: int, job_hash: str) -> bool:
        """Whether ``frame`` is already on disk from this very job (resume)."""

    def write(self, frame: int, pixels_working: np.ndarray, metadata: dict[str, str]) -> None:
        """Write one frame: (H, W, 3|4) float32 scene-linear ACEScg."""

    def close(self, *, abort: bool | None = None) -> None:
        """Finish (movies: publish under the final name, or discard on abort)."""

    def describe(self) -> str:
        """One line for the user: what is being written."""


def open_writer(
    spec: OutputSpec,
    colour: Colour,
    *,
    fps: Fraction,
    width: int,
    height: int,
    has_alpha: bool,
) -> FrameWriter:
    """The writer for ``spec``. Raises ``InputError`` for a format/extension mismatch."""
    container = spec.container
    fmt = spec.format.lower()
    if fmt == "exr":
        if container != "exr":
            raise InputError("EXR output needs a .exr path", path=spec.path, hint="e.g. out/shot.####.exr")
        return ExrSequenceWriter(spec, colour, fps=fps, has_alpha=has_alpha)
    if fmt not in ("sdr", "hdr"):
        raise InputError(f"unknown output format {spec.format!r}", path=spec.path, hint='use "exr", "sdr" or "hdr"')
    if spec.colorspace is not None:
        raise InputError(
            f"output.colorspace applies to EXR output only, not {fmt.upper()}",
            path=spec.path,
            hint="SDR/HDR outputs are display-encoded through an OCIO display and view",
        )
    if fmt == "sdr":
        if container in ("png", "tiff"):
            return ImageSequenceWriter(spec, colour, has_alpha=has_alpha)
        if container == "mov":
            return MovieFrameWriter(spec, colour, codec=spec.codec or "prores_422hq", fps=fps, width=width, height=height)
        raise InputError("SDR output is a .mov (ProRes 422 HQ) or a .png/.tif sequence", path=spec.path)
    if container == "mp4":
        return MovieFrameWriter(spec, colour, codec=spec.codec or "hevc_main10", fps=fps, width=width, height=height)
    if container == "mov":
        return MovieFrameWriter(spec, colour, codec=spec.codec or "prores_4444", fps=fps, width=width, height=height)
    raise InputError("HDR output is a movie: .mov (ProRes 4444 or HEVC Main10) or .mp4 (HEVC Main10)", path=spec.path)


def _frame_path(pattern: str, frame: int) -> str:
    return format_frame_path(pattern, frame)


def _check_pattern(pattern: str) -> None:
    # Fail before rendering anything: a pattern without a frame number would
    # write every frame onto the same file.
    format_frame_path(pattern, 0)


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class ExrSequenceWriter:
    """Half-float EXR frames in the spec's colour space, one file per frame, atomically."""

    def __init__(self, spec: OutputSpec, colour: Colour, *, fps: Fraction, has_alpha: bool) -> None:
        _check_pattern(spec.path)
        self.spec = spec
        self.colour = colour
        self.fps = Fraction(fps)
        self.has_alpha = has_alpha
        self.colorspace = colour.resolve_colorspace(spec.colorspace or "aces_interchange")
        self.compression = spec.compression.lower()
        if self.compression not in COMPRESSIONS:
            raise InputError(
                f"unknown EXR compression {spec.compression!r}",
                path=spec.path,
                hint="use one of " + ", ".join(COMPRESSIONS),
            )
        self.chromaticities = _PRIMARIES_OF.get(self.colorspace)
        aces_name = colour.resolve_colorspace("aces_interchange") if colour.config.getColorSpace("aces_interchange") else None
        self.aces_container = (
            self.colorspace == aces_name
            and self.chromaticities is not None
            and is_container_compatible(self.compression, self.chromaticities)
        )
        remove_stale_temps(os.path.dirname(os.path.abspath(_frame_path(spec.path, 0))))

    def frame_path(self, frame: int) -> str:
        return _frame_path(self.spec.path, frame)

    def is_complete(self, frame: int, job_hash: str) -> bool:
        path = self.frame_path(frame)
        if not os.path.isfile(path):
            return False
        try:
            return read_exr_attributes(path).get("retake/jobHash") == job_hash
        except Exception:
            return False  # unreadable (truncated by a crash outside Retake): render it again

    def write(self, frame: int, pixels_working: np.ndarray, metadata: dict[str, str]) -> None:
        """pixels_working: (H, W, 3|4) float32 scene-linear ACEScg; written as half in ``colorspace``."""
        pixels = pixels_working if self.has_alpha else pixels_working[..., :3]
        out = self.colour.from_working(pixels, self.colorspace)
        attributes: dict[str, str | int | Fraction] = {"retake/colorspace": self.colorspace}
        timecode = None
        for key, value in metadata.items():
            if key == "frame":
                continue  # stored as the int attribute retake/frame
            if key == "timecode":
                timecode = value
                continue
            name = _EXR_KEYS.get(key) or (key if "/" in key else "retake/" + _camel(key))
            attributes[name] = value
        with atomic_output(self.frame_path(frame)) as tmp:
            write_exr(
                tmp,
                out,
                chromaticities=self.chromaticities,
                aces_container=self.aces_container,
                compression=self.compression,
                metadata=attributes,
                fps=self.fps,
                timecode=timecode,
                frame=frame,
            )

    def close(self, *, abort: bool | None = None) -> None:
        pass  # every frame is already complete on disk

    def describe(self) -> str:
        base = f"{self.colorspace} half-float EXR"
        if self.aces_container:
            return f"{base}, SMPTE ST 2065-4 container, uncompressed"
        compression = "uncompressed" if self.compression == "none" else f"{self.compression.upper()}-compressed"
        if self.chromaticities is None:
            return f"{base}, {compression}, no chromaticities attribute (tell readers the colour space)"
        if self.chromaticities is AP0:
            return f"{base}, {compression}: not an ST 2065-4 container file"
        return f"{base}, {compression} (not an ACES container: only uncompressed ACES2065-1 can be)"


def _unpremultiply(pixels: np.ndarray) -> np.ndarray:
    # PNG/TIFF alpha is unassociated: divide in linear light before display encoding.
    rgb, alpha = pixels[..., :3], pixels[..., 3:4]
    safe = np.where(alpha > 0.0, alpha, 1.0)
    return np.concatenate([np.where(alpha > 0.0, rgb / safe, rgb), alpha], axis=-1).astype(np.float32)


class ImageSequenceWriter:
    """16-bit PNG/TIFF frames, display-encoded (sRGB display, ACES 2.0 SDR view), atomically."""

    def __init__(self, spec: OutputSpec, colour: Colour, *, has_alpha: bool) -> None:
        _check_pattern(spec.path)
        self.spec = spec
        self.colour = colour
        self.has_alpha = has_alpha
        # Still images are looked at on computer monitors: sRGB, not BT.1886.
        self.display = spec.display or "sRGB - Display"
        self.view = spec.view or SDR_VIEW
        colour.to_display(np.zeros((1, 1, 3), np.float32), self.display, self.view)  # validates the pair now
        remove_stale_temps(os.path.dirname(os.path.abspath(_frame_path(spec.path, 0))))

    def frame_path(self, frame: int) -> str:
        return _frame_path(self.spec.path, frame)

    def is_complete(self, frame: int, job_hash: str) -> bool:
        path = self.frame_path(frame)
        if not os.path.isfile(path):
            return False
        inp = oiio.ImageInput.open(path)
        if inp is None:
            return False
        try:
            text = inp.spec().get_string_attribute("ImageDescription", "")
        finally:
            inp.close()
        try:
            return json.loads(text).get("retake/jobHash") == job_hash
        except (ValueError, AttributeError):
            return False

    def write(self, frame: int, pixels_working: np.ndarray, metadata: dict[str, str]) -> None:
        """pixels_working: (H, W, 3|4) float32 ACEScg -> 16-bit display-encoded file."""
        pixels = pixels_working if self.has_alpha and pixels_working.shape[-1] == 4 else pixels_working[..., :3]
        if pixels.shape[-1] == 4:
            pixels = _unpremultiply(pixels)
        display = self.colour.to_display(pixels, self.display, self.view)
        code = np.rint(np.clip(display, 0.0, 1.0) * 65535.0).astype(np.uint16)
        height, width, channels = code.shape
        spec = oiio.ImageSpec(width, height, channels, oiio.UINT16)
        if self.display == "sRGB - Display":
            spec.attribute("oiio:ColorSpace", "sRGB")  # PNG: an sRGB chunk
        if channels == 4:
            spec.attribute("oiio:UnassociatedAlpha", 1)
        # The job hash and the rest go into the one text field both PNG and
        # TIFF keep through OpenImageIO.
        described = {"retake/frame": str(frame), "retake/display": self.display, "retake/view": self.view}
        for key, value in metadata.items():
            described[_EXR_KEYS.get(key) or (key if "/" in key else "retake/" + _camel(key))] = str(value)
        spec.attribute("ImageDescription", json.dumps(described, sort_keys=True))
        if self.spec.container == "tiff":
            spec.attribute("compression", "zip")
        with atomic_output(self.frame_path(frame)) as tmp:
            out = oiio.ImageOutput.create(tmp)
            if out is None or not out.open(tmp, spec):
                raise OSError(f"cannot write {tmp}: {oiio.geterror() if out is None else out.geterror()}")
            try:
                if not out.write_image(code):
                    raise OSError(f"cannot write {tmp}: {out.geterror()}")
            finally:
                out.close()

    def close(self, *, abort: bool | None = None) -> None:
        pass

    def describe(self) -> str:
        kind = "PNG" if self.spec.container == "png" else "TIFF"
        return f"16-bit {kind} sequence, display {self.display!r}, view {self.view!r}"


class MovieFrameWriter:
    """One movie for the whole range; frames must come in order without gaps.

    The file is created at the first ``write`` (its timecode comes from that
    frame's metadata) and appears under its final name only at ``close()``.
    """

    def __init__(self, spec: OutputSpec, colour: Colour, *, codec: str, fps: Fraction, width: int, height: int) -> None:
        if codec not in _MOVIE_CODEC_NAMES:
            raise InputError(f"unknown movie codec {codec!r}", path=spec.path, hint="use " + ", ".join(_MOVIE_CODEC_NAMES))
        if spec.container == "mp4" and codec != "hevc_main10":
            raise InputError(f"{_MOVIE_CODEC_NAMES[codec]} goes in a .mov, not a .mp4", path=spec.path)
        if not codec_available(codec):
            raise InputError(
                f"this installation's FFmpeg cannot encode {_MOVIE_CODEC_NAMES[codec]}",
                path=spec.path,
                hint="write ProRes (.mov) instead, or install a PyAV build with libx265",
            )
        if codec == "hevc_main10" and width < 64:
            raise InputError(f"HEVC output needs a width of at least 64 px, got {width}", path=spec.path,
                             hint="write ProRes (.mov) for tiny test renders")
        hdr = spec.format.lower() == "hdr"
        self.spec = spec
        self.colour = colour
        self.codec = codec
        self.fps = Fraction(fps)
        self.width = width
        self.height = height
        self.tag = "rec2100pq" if hdr else "rec709"
        self.display = spec.display or (HDR_DISPLAY if hdr else SDR_DISPLAY)
        self.view = spec.view or (HDR_VIEW if hdr else SDR_VIEW)
        colour.to_display(np.zeros((1, 1, 3), np.float32), self.display, self.view)  # validates the pair now
        self._movie: MovieWriter | None = None
        self._next: int | None = None
        remove_stale_temps(os.path.dirname(os.path.abspath(spec.path)))

    def frame_path(self, frame: int) -> None:
        return None

    def is_complete(self, frame: int, job_hash: str) -> bool:
        return False  # a movie is all or nothing: a re-run renders it whole

    def write(self, frame: int, pixels_working: np.ndarray, metadata: dict[str, str]) -> None:
        """pixels_working: (H, W, 3|4) float32 ACEScg; alpha is dropped."""
        if self._next is not None and frame != self._next:
            raise InputError(
                f"movie frames must be consecutive: expected frame {self._next}, got {frame}",
                path=self.spec.path,
                frame=frame,
                hint="render a movie in one piece (no --frames chunks), or write a sequence",
            )
        if self._movie is None:
            self._movie = MovieWriter(
                self.spec.path,
                codec=self.codec,  # type: ignore[arg-type]
                fps=self.fps,
                width=self.width,
                height=self.height,
                colour=self.tag,  # type: ignore[arg-type]
                timecode=metadata.get("timecode"),
            )
        display = self.colour.to_display(pixels_working[..., :3], self.display, self.view)
        self._movie.write(display)
        self._next = frame + 1

    def close(self, *, abort: bool | None = None) -> None:
        """Publish the movie, or discard it.

        ``abort=None`` decides by itself: when an exception is propagating
        (``close()`` called from a ``finally`` after a failure or a cancel) the
        partial movie is discarded rather than published under the final name.
        """
        if self._movie is None:
            return
        if abort is None:
            abort = sys.exc_info()[1] is not None
        movie, self._movie = self._movie, None
        if abort:
            movie.abort()
        else:
            movie.close()

    def describe(self) -> str:
        name = _MOVIE_CODEC_NAMES[self.codec]
        signal = "Rec.2100 PQ" if self.tag == "rec2100pq" else "Rec.709 BT.1886"
        return (
            f"{name} movie, {signal}, 10-bit {_MOVIE_SAMPLING[self.codec]} limited range, "
            f"display {self.display!r}, view {self.view!r}"
        )
