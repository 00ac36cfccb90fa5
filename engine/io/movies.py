"""Read movies (ProRes, DNxHR, H.264, HEVC, FFV1 in mov/mp4/mxf/mkv) with PyAV.

Frames are numbered by their index in the stream (0 = first decoded frame);
the plate layer maps them to absolute frame numbers (``first`` defaults to
1001, see ``engine.io.plates``). A frame is returned as (H, W, 3) float32
R'G'B' in 0..1: the file's own encoding (display-referred, e.g. Rec.709
gamma), decoded through ``rgb48le`` so 10- and 12-bit sources keep their
precision. An alpha channel (ProRes 4444) is not returned.

Nothing in this module imports torch.
"""
from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from engine.errors import InputError
from engine.io.header import ImageHeader, Window

_HINT_BROKEN = "re-export the movie or check the transfer"

# FFmpeg's names for the colour tags (libavutil/pixfmt.h), as ffprobe prints them.
_PRIMARIES = {1: "bt709", 2: "unknown", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film",
              9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213"}
_TRC = {1: "bt709", 2: "unknown", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear",
        9: "log100", 10: "log316", 11: "iec61966-2-4", 12: "bt1361e", 13: "iec61966-2-1", 14: "bt2020-10",
        15: "bt2020-12", 16: "smpte2084", 17: "smpte428", 18: "arib-std-b67"}
_MATRIX = {0: "gbr", 1: "bt709", 2: "unknown", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
           8: "ycgco", 9: "bt2020nc", 10: "bt2020c", 11: "smpte2085", 14: "ictcp"}
_RANGE = {0: "unknown", 1: "tv", 2: "pc"}
# Matrix tag -> the swscale colourspace that decodes it (PyAV's Colorspace values).
_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}
# Decoding forward this far is cheaper than a seek back to a keyframe.
_FORWARD_DECODE_LIMIT = 48


class MovieReader:
    """One open movie: its header, frame count and frames by index.

    ``read(i)`` returns frame ``i`` (0-based). Reading ``i, i+1, ...`` in
    order decodes straight on, never seeking again; a jump backwards or far
    ahead seeks to the keyframe before and decodes forward.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if not Path(self.path).is_file():
            raise InputError("movie not found", path=self.path, hint="check the path")
        try:
            self._container = av.open(self.path, "r")
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise InputError(f"not a readable movie ({exc})", path=self.path, hint=_HINT_BROKEN) from None
        if not self._container.streams.video:
            self._container.close()
            raise InputError("the file has no video stream", path=self.path, hint="give a movie with picture")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self.fps = self._fps()
        self.timecode = self._timecode()
        self.frame_count = self._frame_count()
        self.header = self._header()
        self._decoder: Iterator[av.VideoFrame] | None = None
        self._next_index = 0  # index of the frame the decoder yields next
        self._pending: av.VideoFrame | None = None  # a frame decoded while seeking, not yet returned

    # --- description -------------------------------------------------------------------

    def _fps(self) -> Fraction:
        for rate in (self._stream.average_rate, self._stream.base_rate, self._stream.guessed_rate):
            if rate:
                return Fraction(rate.numerator, rate.denominator)
        raise InputError("the movie states no frame rate", path=self.path, hint=_HINT_BROKEN)

    def _timecode(self) -> str | None:
        """The start timecode from stream or container metadata (QuickTime tmcd track, MXF)."""
        for metadata in [s.metadata for s in self._container.streams] + [self._container.metadata]:
            if metadata.get("timecode"):
                return str(metadata["timecode"])
        return None

    def _frame_count(self) -> int:
        """The container's frame count, else a count of the video packets (no decoding)."""
        if self._stream.frames and self._stream.frames > 0:
            return int(self._stream.frames)
        count = 0
        try:
            for packet in self._container.demux(self._stream):
                if packet.size:
                    count += 1
        except av.FFmpegError as exc:
            raise InputError(f"the movie is damaged ({exc})", path=self.path, hint=_HINT_BROKEN) from None
        self._container.seek(0, stream=self._stream)
        if count == 0:
            raise InputError("the movie has no frames", path=self.path, hint=_HINT_BROKEN)
        return count

    def _header(self) -> ImageHeader:
        context = self._stream.codec_context
        width, height = context.width, context.height
        sar = self._stream.sample_aspect_ratio or context.sample_aspect_ratio
        aspect = float(sar) if sar and sar.numerator > 0 else 1.0
        attributes = {
            "codec": context.name,
            "pix_fmt": str(context.pix_fmt),
            "color_primaries": _PRIMARIES.get(int(context.color_primaries), str(context.color_primaries)),
            "color_trc": _TRC.get(int(context.color_trc), str(context.color_trc)),
            "colorspace": _MATRIX.get(int(context.colorspace), str(context.colorspace)),
            "color_range": _RANGE.get(int(context.color_range), str(context.color_range)),
            "container": self._container.format.name,
        }
        if context.profile:
            attributes["profile"] = str(context.profile)
        return ImageHeader(
            path=self.path,
            file_format=self._container.format.name.split(",")[0],
            display_window=Window.of_size(width, height),
            data_window=Window.of_size(width, height),
            pixel_aspect=aspect,
            channels=("R", "G", "B"),
            selected=("R", "G", "B"),
            pixel_type=str(context.pix_fmt),
            compression=context.name,
            fps=self.fps,
            timecode=self.timecode,
            attributes=attributes,
        )

    # --- frames --------------------------------------------------------------------------

    def read(self, index: int) -> np.ndarray:
        """Frame ``index`` (0-based) as (H, W, 3) float32 R'G'B' in 0..1."""
        if not 0 <= index < self.frame_count:
            raise InputError(
                f"frame index {index} is outside the movie (0-{self.frame_count - 1})",
                path=self.path,
                hint="check the plate's frame range",
            )
        ahead = index - self._next_index
        if self._decoder is None or ahead < 0 or ahead > _FORWARD_DECODE_LIMIT:
            self._seek(index)
        while True:
            frame = self._decode_next(index)
            current = self._next_index
            self._next_index += 1
            if current == index:
                return _to_rgb(frame)

    def frames(self) -> Iterator[np.ndarray]:
        """Every frame in order, streaming."""
        for index in range(self.frame_count):
            yield self.read(index)

    def _seek(self, index: int) -> None:
        """Seek to the keyframe at or before ``index`` and set where decoding resumes."""
        stream = self._stream
        start = stream.start_time or 0
        if index == 0:
            self._container.seek(start, stream=stream, backward=True, any_frame=False)
            self._decoder = self._container.decode(stream)
            self._next_index = 0
            self._pending = None
            return
        target = start + int(Fraction(index) / self.fps / stream.time_base)
        self._container.seek(target, stream=stream, backward=True, any_frame=False)
        self._decoder = self._container.decode(stream)
        # The keyframe we land on tells us where we are.
        first = next(self._decoder, None)
        if first is None:
            raise InputError(f"cannot seek to frame index {index}", path=self.path, hint=_HINT_BROKEN)
        self._next_index = self._index_of(first)
        self._pending = first
        if self._next_index > index:
            # Landed after the frame (a stream without a usable index): start over.
            self._seek(0)

    def _index_of(self, frame: av.VideoFrame) -> int:
        stream = self._stream
        if frame.pts is None:
            return 0
        seconds = (frame.pts - (stream.start_time or 0)) * stream.time_base
        return int(round(seconds * self.fps))

    def _decode_next(self, wanted: int) -> av.VideoFrame:
        pending = self._pending
        if pending is not None:
            self._pending = None
            return pending
        try:
            frame = next(self._decoder) if self._decoder is not None else None
        except av.FFmpegError as exc:
            raise InputError(f"cannot decode the movie ({exc})", path=self.path, frame=wanted, hint=_HINT_BROKEN) from None
        if frame is None:
            raise InputError(
                f"the movie ends before frame index {wanted}", path=self.path, hint=_HINT_BROKEN
            )
        return frame

    def close(self) -> None:
        self._decoder = None
        self._container.close()

    def __enter__(self) -> "MovieReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """Decode to (H, W, 3) float32 0..1 through 16-bit RGB, honouring the matrix and range tags.

    An untagged matrix decodes as BT.709 from 720 lines up and BT.601 below,
    as players do; an untagged range as limited (tv).
    """
    matrix = _SWS_MATRIX.get(int(frame.colorspace))
    if matrix is None:
        matrix = 1 if frame.height >= 720 else 5
    options: dict[str, object] = {"src_colorspace": matrix}
    if int(frame.color_range) in (1, 2):
        options["src_color_range"] = int(frame.color_range)
    rgb = frame.to_ndarray(format="rgb48le", **options)
    return rgb.astype(np.float32) / np.float32(65535.0)


def probe_movie(path: str | Path) -> tuple[ImageHeader, int]:
    """(header, frame count) of a movie without decoding pixels."""
    with MovieReader(path) as reader:
        return reader.header, reader.frame_count
