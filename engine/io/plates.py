"""Open a plate (a frame sequence or a movie) and read its frames one at a time.

``open_plate`` lists files and reads one header (the first present frame's,
or the movie's stream); pixels are read only by ``Plate.read(frame)``, so a
plate of any length streams in constant memory.

Frame numbers are absolute: a sequence's come from its file names; a movie's
start at ``first`` (default 1001, the VFX convention, whatever the movie's
timecode says) and run for its frame count.

Nothing here imports torch.
"""
from __future__ import annotations

import os
from types import TracebackType

import numpy as np

from engine.errors import InputError
from engine.io import exr, images
from engine.io.header import ImageHeader, PlateInfo
from engine.io.movies import MovieReader
from engine.io.sequences import FrameSequence, find_sequence, has_frame_number

EXR_EXTENSIONS = (".exr",)
IMAGE_EXTENSIONS = (".dpx", ".tif", ".tiff", ".png", ".jpg", ".jpeg")
MOVIE_EXTENSIONS = (".mov", ".mp4", ".mxf", ".mkv", ".avi")
MOVIE_FIRST_FRAME = 1001

_MISSING_HINT = 'render or restore it, or set plate.missing to "hold" or "black"'


class Plate:
    """An open plate. ``read(frame)`` gives (H, W, 3|4) float32 file-encoded values
    over the display window for an absolute frame number. Use as a context manager.
    """

    info: PlateInfo

    def frame_path(self, frame: int) -> str | None:
        """The file of ``frame`` (present or missing) for a sequence or a still; None for a movie."""
        raise NotImplementedError

    def read(self, frame: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        """Release open files (movies); a sequence holds none between reads."""

    def __enter__(self) -> "Plate":
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _check_range(self, frame: int) -> None:
        if not self.info.first <= frame <= self.info.last:
            raise InputError(
                f"frame {frame} is outside the plate ({self.info.first}-{self.info.last})",
                path=self.info.path,
                frame=frame,
                hint="ask for a frame inside the plate's range",
            )


class SequencePlate(Plate):
    """EXR, DPX, TIFF, PNG or JPEG frames named by a pattern."""

    def __init__(self, path: str, sequence: FrameSequence, part: str | None, view: str | None) -> None:
        self._sequence = sequence
        self._part = part
        self._view = view
        self._is_exr = sequence.pattern.suffix.lower().endswith(EXR_EXTENSIONS)
        first_present = next(iter(sequence.files))
        header = self._read_header(sequence.files[first_present], first_present)
        self.info = PlateInfo(
            path=path,
            kind="sequence",
            first=sequence.first,
            last=sequence.last,
            missing=sequence.missing,
            header=header,
            fps=header.fps,
            timecode=header.timecode,
        )

    def frame_path(self, frame: int) -> str | None:
        return self._sequence.frame_path(frame)

    def _read_header(self, file: str, frame: int) -> ImageHeader:
        try:
            if self._is_exr:
                return exr.read_header(file, part=self._part, view=self._view)
            return images.read_header(file)
        except InputError as error:
            raise _with_frame(error, frame) from None

    def read(self, frame: int) -> np.ndarray:
        """Frame ``frame`` as (H, W, 3|4) float32; raises InputError for a missing or mismatched frame."""
        self._check_range(frame)
        file = self._sequence.files.get(frame)
        if file is None or not os.path.isfile(file):
            raise InputError(
                f"frame {frame} is missing (expected {self._sequence.frame_path(frame)})",
                path=self.info.path,
                frame=frame,
                hint=_MISSING_HINT,
            )
        try:
            if self._is_exr:
                header, pixels = exr.read_header_and_image(file, part=self._part, view=self._view)
            else:
                header, pixels = images.read_header_and_image(file)
        except InputError as error:
            raise _with_frame(error, frame) from None
        expected = self.info.header.display_window
        if (header.display_window.width, header.display_window.height) != (expected.width, expected.height):
            raise InputError(
                f"frame {frame} is {header.display_window.width}x{header.display_window.height} "
                f"but the plate's first frame is {expected.width}x{expected.height}",
                path=file,
                frame=frame,
                hint="re-render the frame at the plate's resolution",
            )
        return pixels


class StillPlate(Plate):
    """One image with no frame number (a matte painting, a test image) as a one-frame plate.

    Its frame number is ``first`` (default 1001) so it lines up with a plate it is used beside.
    """

    def __init__(self, path: str, first: int | None, part: str | None, view: str | None) -> None:
        self._file = path
        self._part = part
        self._view = view
        self._is_exr = plate_kind(path) == "exr"
        frame = MOVIE_FIRST_FRAME if first is None else first
        header = exr.read_header(path, part=part, view=view) if self._is_exr else images.read_header(path)
        self.info = PlateInfo(path=path, kind="still", first=frame, last=frame, missing=(), header=header,
                              fps=header.fps, timecode=header.timecode)

    def frame_path(self, frame: int) -> str | None:
        return self._file

    def read(self, frame: int) -> np.ndarray:
        """The image as (H, W, 3|4) float32, whatever frame of the (one-frame) range is asked."""
        self._check_range(frame)
        if self._is_exr:
            return exr.read_image(self._file, part=self._part, view=self._view)
        return images.read_image(self._file)


class MoviePlate(Plate):
    """A movie's frames on absolute frame numbers ``first, first + 1, ...``."""

    def __init__(self, path: str, first: int | None, last: int | None) -> None:
        self._reader = MovieReader(path)
        start = MOVIE_FIRST_FRAME if first is None else first
        end = start + self._reader.frame_count - 1
        if last is not None:
            if last > end:
                self._reader.close()
                raise InputError(
                    f"the movie has {self._reader.frame_count} frames ({start}-{end}); last frame {last} is beyond it",
                    path=path,
                    hint="set last to at most " + str(end),
                )
            end = last
        if end < start:
            self._reader.close()
            raise InputError(f"the first frame {start} is after the last frame {end}", path=path, hint="fix the range")
        self._start = start
        self.info = PlateInfo(
            path=path,
            kind="movie",
            first=start,
            last=end,
            missing=(),
            header=self._reader.header,
            fps=self._reader.fps,
            timecode=self._reader.timecode,
        )

    def frame_path(self, frame: int) -> str | None:
        return None

    def read(self, frame: int) -> np.ndarray:
        """Frame ``frame`` as (H, W, 3) float32 0..1 R'G'B'."""
        self._check_range(frame)
        try:
            return self._reader.read(frame - self._start)
        except InputError as error:
            raise _with_frame(error, frame) from None

    def close(self) -> None:
        self._reader.close()


def _with_frame(error: InputError, frame: int) -> InputError:
    """The same error, naming the plate frame it happened on."""
    return InputError(error.message, path=error.path, frame=frame, hint=error.hint)


_SIGNATURES = (
    (b"\x76\x2f\x31\x01", "exr"),
    (b"\x89PNG", "image"),
    (b"SDPX", "image"),
    (b"XPDS", "image"),
    (b"II*\x00", "image"),
    (b"MM\x00*", "image"),
)


def plate_kind(path: str) -> str:
    """"exr", "image" or "movie" by the path's extension (or, for a file without a known
    extension, by its first bytes); InputError for anything else."""
    lower = path.lower()
    if lower.endswith(EXR_EXTENSIONS):
        return "exr"
    if lower.endswith(IMAGE_EXTENSIONS):
        return "image"
    if lower.endswith(MOVIE_EXTENSIONS):
        return "movie"
    if os.path.isfile(path):
        try:
            with open(path, "rb") as handle:
                head = handle.read(4)
        except OSError as error:
            raise InputError(f"cannot read the file ({error.strerror})", path=path,
                             hint="check the path and its permissions") from None
        for signature, kind in _SIGNATURES:
            if head == signature:
                return kind
    known = ", ".join(EXR_EXTENSIONS + IMAGE_EXTENSIONS + MOVIE_EXTENSIONS)
    raise InputError("unknown plate type", path=path, hint=f"give a sequence or movie ending in one of {known}")


def open_plate(
    path: str,
    *,
    first: int | None = None,
    last: int | None = None,
    part: str | None = None,
    view: str | None = None,
) -> Plate:
    """Open a sequence pattern (``plate.####.exr`` ...), one member of it, or a movie.

    ``first``/``last`` narrow or widen a sequence's range (frames without a
    file are ``info.missing``); for a movie ``first`` is the number of its
    first frame (default 1001) and ``last`` may shorten it. ``part``/``view``
    choose the EXR part and view. Reads only the first present frame's header.
    """
    path = os.fspath(path)
    if plate_kind(path) == "movie":
        return MoviePlate(path, first, last)
    if os.path.isfile(path) and not has_frame_number(path):
        return StillPlate(path, first, part, view)
    return SequencePlate(path, find_sequence(path, first, last), part, view)



def open_still(path: str, *, first: int | None = None, part: str | None = None, view: str | None = None) -> Plate:
    """Exactly this one image file as a one-frame plate, even when its name carries a frame number.

    For keyframe and reference images: ``paint.1010.exr`` beside ``paint.1020.exr`` is the frame
    the artist painted at 1010, never the first member of a sequence. Movies are refused.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError("no such image file", path=path, hint="check the path (a single image is expected here)")
    if plate_kind(path) == "movie":
        raise InputError("a movie where a single image is expected", path=path,
                         hint="export the frame as an EXR, PNG, TIFF or DPX still")
    return StillPlate(path, first, part, view)
