"""Movie output through PyAV (FFmpeg): ProRes 422 HQ, ProRes 4444, HEVC Main10.

Input frames are display-encoded RGB (already through an OCIO display/view:
BT.1886 Rec.709 for SDR, PQ Rec.2020 for HDR). This module only *encodes*
them: R'G'B' -> Y'CbCr with the matrix of the target standard, limited ("tv")
range 10-bit, chroma subsampled by averaging. That encoding is done here in
numpy (not by swscale) so the matrix, range and rounding are exactly the ones
tagged on the stream; it is not a colour-space conversion (OCIO did that).

The movie is written under a hidden temporary name next to the final path and
renamed at ``close()`` (``engine.io.atomic``): a killed render never leaves a
half movie under the final name. Leaving a ``with`` block on an exception
discards the partial movie.
"""
from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import av
import numpy as np

from engine.io.atomic import atomic_output

Codec = Literal["prores_422hq", "prores_4444", "hevc_main10"]
ColourTag = Literal["rec709", "rec2100pq"]


@dataclass(frozen=True)
class _CodecSetup:
    encoder: str
    pix_fmt: str
    options: dict[str, str]
    chroma: tuple[int, int]  # horizontal, vertical subsampling factors


_CODECS: dict[str, _CodecSetup] = {
    # prores_ks profiles: 0 proxy, 1 lt, 2 standard, 3 hq, 4 4444, 5 4444xq.
    "prores_422hq": _CodecSetup("prores_ks", "yuv422p10le", {"profile": "3", "vendor": "apl0"}, (2, 1)),
    "prores_4444": _CodecSetup("prores_ks", "yuv444p10le", {"profile": "4", "vendor": "apl0"}, (1, 1)),
    "hevc_main10": _CodecSetup("libx265", "yuv420p10le", {"crf": "12", "preset": "medium"}, (2, 2)),
}

# (luma coefficients Kr, Kb) and the FFmpeg names of the tags for each colour.
_COLOURS: dict[str, tuple[float, float, str, str, str]] = {
    "rec709": (0.2126, 0.0722, "bt709", "bt709", "bt709"),
    "rec2100pq": (0.2627, 0.0593, "bt2020", "smpte2084", "bt2020nc"),
}
# AVCOL_* values (libavutil/pixfmt.h) for the codec context.
_PRIMARIES = {"bt709": 1, "bt2020": 9}
_TRC = {"bt709": 1, "smpte2084": 16}
_MATRIX = {"bt709": 1, "bt2020nc": 9}
_RANGE_TV = 1  # AVCOL_RANGE_MPEG
_X265_MIN_WIDTH = 64


def codec_available(codec: Codec) -> bool:
    """Whether this PyAV build can encode ``codec``."""
    return _CODECS[codec].encoder in av.codecs_available


def rgb_to_ycbcr10(rgb: np.ndarray, kr: float, kb: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Display-encoded R'G'B' -> limited-range 10-bit Y'CbCr.

    rgb: (H, W, 3) float 0..1 display code values (clamped to 0..1 here:
    video has no room for more). Returns Y (H, W) uint16 code values, and Cb,
    Cr (H, W) float code values at full resolution, rounded by ``_subsample``
    after averaging.
    """
    x = np.clip(np.asarray(rgb, dtype=np.float32), 0.0, 1.0)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    kg = 1.0 - kr - kb
    y = kr * r + kg * g + kb * b
    cb = (b - y) / (2.0 * (1.0 - kb))
    cr = (r - y) / (2.0 * (1.0 - kr))
    # ITU-R BT.709 / BT.2020 10-bit narrow range: Y' 64..940, Cb/Cr 64..960 around 512.
    y10 = np.rint(64.0 + 876.0 * y).astype(np.uint16)
    return y10, 512.0 + 896.0 * cb, 512.0 + 896.0 * cr


def _subsample(plane: np.ndarray, sx: int, sy: int) -> np.ndarray:
    # Box average of each sx*sy block (edges: the last odd column/row repeats).
    h, w = plane.shape
    if sx == 1 and sy == 1:
        out = plane
    else:
        pad_w, pad_h = (-w) % sx, (-h) % sy
        if pad_w or pad_h:
            plane = np.pad(plane, ((0, pad_h), (0, pad_w)), mode="edge")
        hh, ww = plane.shape
        out = plane.reshape(hh // sy, sy, ww // sx, sx).mean(axis=(1, 3))
    return np.clip(np.rint(out), 0, 1023).astype(np.uint16)


def _fill_plane(plane: av.video.plane.VideoPlane, data: np.ndarray) -> None:
    # Plane rows are padded to line_size bytes: write row by row through a view.
    h, w = data.shape
    view = np.frombuffer(plane, dtype=np.uint16).reshape(-1, plane.line_size // 2)
    view[:h, :w] = data


class MovieWriter:
    """Stream display-encoded RGB frames into a movie, atomically.

    ``write(rgb)``: rgb (H, W, 3) float32 display-encoded 0..1 (BT.1886
    Rec.709 for ``colour="rec709"``, PQ Rec.2020 for ``"rec2100pq"``).
    ``close()`` flushes the encoder and renames the temp file onto ``path``;
    ``abort()`` drops everything. Usable as a context manager.
    """

    def __init__(
        self,
        path: str,
        *,
        codec: Codec,
        fps: Fraction,
        width: int,
        height: int,
        colour: ColourTag,
        timecode: str | None = None,
    ) -> None:
        if codec not in _CODECS:
            raise ValueError(f"unknown movie codec {codec!r}; use one of {', '.join(_CODECS)}")
        if colour not in _COLOURS:
            raise ValueError(f"unknown movie colour {colour!r}; use one of {', '.join(_COLOURS)}")
        setup = _CODECS[codec]
        if setup.encoder not in av.codecs_available:
            raise RuntimeError(f"this PyAV/FFmpeg build has no {setup.encoder} encoder (needed for {codec})")
        sx, sy = setup.chroma
        if width % sx or height % sy:
            raise ValueError(f"{codec} needs a width divisible by {sx} and a height by {sy}, got {width}x{height}")
        if setup.encoder == "libx265" and width < _X265_MIN_WIDTH:
            # The libx265 in the PyAV wheels corrupts the heap (the process
            # aborts) on frames narrower than 64 px: refuse before it can.
            raise ValueError(f"HEVC output needs a width of at least {_X265_MIN_WIDTH} px, got {width}")
        self.path = path
        self.codec = codec
        self.fps = Fraction(fps)
        self.width = width
        self.height = height
        self.colour = colour
        self.timecode = timecode
        self.frames_written = 0
        self._setup = setup
        self._kr, self._kb, prim, trc, matrix = _COLOURS[colour]

        # The temp file lives as long as the writer: enter the context by hand.
        self._atomic = atomic_output(path)
        self._tmp = self._atomic.__enter__()
        try:
            self._container = av.open(self._tmp, mode="w")
            if timecode is not None:
                # The mov/mp4 muxers turn this into a tmcd track.
                self._container.metadata["timecode"] = timecode
            stream = self._container.add_stream(setup.encoder, rate=self.fps)
            stream.width = width
            stream.height = height
            stream.pix_fmt = setup.pix_fmt
            ctx = stream.codec_context
            ctx.color_primaries = _PRIMARIES[prim]
            ctx.color_trc = _TRC[trc]
            ctx.colorspace = _MATRIX[matrix]
            ctx.color_range = _RANGE_TV
            options = dict(setup.options)
            if setup.encoder == "libx265":
                # x265 writes its own VUI; say the same thing there.
                options["x265-params"] = (
                    f"colorprim={prim}:transfer={trc}:colormatrix={matrix}:range=limited:log-level=error"
                )
                if self._container.format.name in ("mov,mp4,m4a,3gp,3g2,mj2", "mov", "mp4"):
                    ctx.codec_tag = "hvc1"  # what Apple players expect for HEVC
            stream.options = options
            self._stream = stream
        except BaseException:
            self._atomic.__exit__(*sys.exc_info())
            raise
        self._closed = False

    def write(self, rgb: np.ndarray) -> None:
        """Encode one frame: rgb (H, W, 3) float32 display-encoded 0..1."""
        if self._closed:
            raise RuntimeError("MovieWriter is closed")
        if rgb.shape != (self.height, self.width, 3):
            raise ValueError(f"expected a ({self.height}, {self.width}, 3) frame, got {rgb.shape}")
        y, cb, cr = rgb_to_ycbcr10(rgb, self._kr, self._kb)
        sx, sy = self._setup.chroma
        frame = av.VideoFrame(self.width, self.height, self._setup.pix_fmt)
        _fill_plane(frame.planes[0], y)
        _fill_plane(frame.planes[1], _subsample(cb, sx, sy))
        _fill_plane(frame.planes[2], _subsample(cr, sx, sy))
        frame.color_range = _RANGE_TV
        frame.colorspace = self._stream.codec_context.colorspace
        frame.color_primaries = self._stream.codec_context.color_primaries
        frame.color_trc = self._stream.codec_context.color_trc
        # pts counts frames: time base 1/fps. (Not the stream's time base: the
        # mov muxer changes that to e.g. 1/24000 once the header is written.)
        frame.pts = self.frames_written
        frame.time_base = 1 / self.fps
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        """Flush, close and move the movie onto its final path."""
        if self._closed:
            return
        self._closed = True
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
        except BaseException:
            with contextlib.suppress(Exception):
                self._container.close()
            self._atomic.__exit__(*sys.exc_info())
            raise
        self._atomic.__exit__(None, None, None)

    def abort(self) -> None:
        """Drop the partial movie: nothing appears under the final path."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._container.close()
        try:
            raise _Aborted()
        except _Aborted:
            # atomic_output removes the temp file when it sees an exception.
            with contextlib.suppress(_Aborted):
                self._atomic.__exit__(*sys.exc_info())

    def __enter__(self) -> "MovieWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class _Aborted(Exception):
    pass

