"""Frame-sequence patterns: parse, find on disk, name any frame.

Accepted spellings of one sequence (all mean 4-digit frame numbers here):

==============================  ==========================================
``plate.####.exr``              Nuke: one ``#`` per digit
``plate.%04d.exr``              printf (``%d``: no padding)
``plate.@@@@.exr``              one ``@`` per digit (Nuke and fileseq agree)
``plate.1001-1100#.exr``        fileseq: a frame range, then ``#`` = 4 digits
``plate.[1001-1100].exr``       Resolve: the digits of the first number pad
``plate.1001.exr``              one member: the whole sequence on disk
==============================  ==========================================

The ``#`` rule, deliberately: fileseq reads ``#`` as 4 digits (``##`` = 8),
Nuke as 1 digit each. A pattern that names a frame range (``1001-1100#``)
is fileseq syntax and gets fileseq's meaning; a pattern without a range is
how Nuke and artists write it, so each ``#`` is one digit (``####`` = 4,
``#`` = unpadded). ``@`` is always one digit, ``%0Nd`` always N.

Frames on disk with more digits than the padding count when they have no
leading zero (frame 10000 of ``####``), as Nuke and fileseq read them.

Nothing here reads pixels; listing one directory is the only disk access.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import fileseq

from engine.errors import InputError

# Resolve writes a sequence as ``name.[1001-1100].ext``.
_RESOLVE_RANGE = re.compile(r"\[(-?\d+)-(-?\d+)\]")


@dataclass(frozen=True)
class FramePattern:
    """A parsed sequence pattern: ``directory/prefix<frame, padded>suffix``.

    ``range`` is the (first, last) the pattern itself names (fileseq or
    Resolve range, or the one frame of a concrete member path), else None.
    ``member`` is True when the user gave one concrete file of the sequence.
    """

    text: str
    directory: str
    prefix: str
    padding: int
    suffix: str
    range: tuple[int, int] | None
    member: bool
    _seq: fileseq.FileSequence = field(repr=False, compare=False)

    def path(self, frame: int) -> str:
        """The file name of ``frame`` (exists or not), e.g. ``plate.1001.exr``."""
        return self._seq.frame(frame)

    def describe(self) -> str:
        """How the pattern reads, for error messages: ``/dir/plate.####.exr (4-digit frame numbers)``."""
        shown = os.path.join(self.directory, self.prefix + "#" * self.padding + self.suffix)
        digits = "unpadded frame numbers" if self.padding <= 1 else f"{self.padding}-digit frame numbers"
        return f"{shown} ({digits})"


@dataclass(frozen=True)
class FrameSequence:
    """A sequence on its absolute frame range.

    ``files`` maps each present frame (in ``first..last``) to its path, in
    frame order; ``missing`` lists the frames of the range with no file.
    """

    pattern: FramePattern
    first: int
    last: int
    files: dict[int, str]
    missing: tuple[int, ...]

    def frame_path(self, frame: int) -> str:
        """The path of any frame, present or not (to name a missing frame in an error)."""
        return self.files.get(frame) or self.pattern.path(frame)


def parse_pattern(text: str) -> FramePattern:
    """Parse a sequence pattern or a concrete member path (see the module doc for the rules).

    Raises ``InputError`` when ``text`` has no frame number or padding at all.
    """
    spec = text
    resolve = _RESOLVE_RANGE.search(os.path.basename(spec))
    if resolve:
        # Rewrite Resolve's [a-b] as fileseq's a-b with one @ per digit of a.
        digits = len(resolve.group(1).lstrip("-"))
        head, tail = os.path.split(spec)
        spec = os.path.join(head, tail[: resolve.start()] + f"{resolve.group(1)}-{resolve.group(2)}" + "@" * digits + tail[resolve.end() :])
    try:
        seq = fileseq.FileSequence(spec, pad_style=fileseq.PAD_STYLE_HASH1)
        if seq.frameSet() is not None and "#" in seq.padding() and seq.padding() in os.path.basename(spec):
            # A fileseq frame range with #: fileseq's own meaning, # = 4 digits.
            seq = fileseq.FileSequence(spec, pad_style=fileseq.PAD_STYLE_HASH4)
    except fileseq.ParseException as exc:
        raise InputError(f"not a frame-sequence pattern ({exc})", path=text, hint=_PATTERN_HINT) from None
    if not seq.padding():
        raise InputError("no frame number in the path", path=text, hint=_PATTERN_HINT)
    member = seq.padding() not in os.path.basename(spec)
    frames = seq.frameSet()
    span = (min(frames), max(frames)) if frames is not None and len(frames) else None
    return FramePattern(
        text=text,
        directory=seq.dirname().rstrip("/\\") or ".",
        prefix=seq.basename(),
        padding=seq.zfill(),
        suffix=seq.extension(),
        range=span,
        member=member,
        _seq=seq,
    )


_PATTERN_HINT = "write it like plate.####.exr, plate.%04d.exr, plate.1001-1100#.exr or give one frame's file"


def format_frame_path(pattern: str, frame: int) -> str:
    """Name the file of ``frame`` for an output pattern, with the same rules as inputs.

    ``format_frame_path("out/x.####.exr", 1001) == "out/x.1001.exr"``; also
    ``%04d``, ``@@@@`` and fileseq ranges (the range itself is ignored).
    """
    return parse_pattern(pattern).path(frame)


def frames_on_disk(pattern: FramePattern) -> dict[int, str]:
    """Every file of the sequence present on disk, by frame, in frame order."""
    matcher = re.compile(re.escape(pattern.prefix) + r"(-?)(\d+)" + re.escape(pattern.suffix) + r"\Z")
    found: dict[int, str] = {}
    try:
        entries = list(os.scandir(pattern.directory))
    except OSError:
        return {}
    for entry in entries:
        match = matcher.match(entry.name)
        if not match or not entry.is_file():
            continue
        digits = match.group(2)
        # Exactly the padding, or longer without a leading zero (frame 10000 of ####).
        if len(digits) != pattern.padding and not (len(digits) > pattern.padding and (digits[0] != "0" or digits == "0")):
            continue
        if pattern.padding <= 1 and len(digits) > 1 and digits[0] == "0":
            continue
        frame = int(match.group(1) + digits)
        # Name it as the pattern does (same directory spelling as the user's).
        found[frame] = pattern.path(frame)
    return dict(sorted(found.items()))


def find_sequence(path: str, first: int | None = None, last: int | None = None) -> FrameSequence:
    """Resolve a pattern (or one member's path) to the frames on disk.

    The range is ``first``/``last`` when given (they may narrow or widen what
    is on disk), else the range the pattern names, else what is on disk.
    Frames of the range without a file are listed in ``missing``, not raised.
    Raises ``InputError`` when no file of the sequence exists in the range.
    """
    pattern = parse_pattern(path)
    on_disk = frames_on_disk(pattern)
    if pattern.member:
        named = pattern.range
        # A concrete member: its directory listing is the sequence.
        span = (min(on_disk), max(on_disk)) if on_disk else named
    else:
        span = pattern.range or ((min(on_disk), max(on_disk)) if on_disk else None)
    if span is None:
        raise InputError(
            f"no frames found: looked for {pattern.describe()}",
            path=path,
            hint="check the path, the padding and that the frames are rendered",
        )
    lo = first if first is not None else span[0]
    hi = last if last is not None else span[1]
    if lo > hi:
        raise InputError(f"the first frame {lo} is after the last frame {hi}", path=path, hint="swap or fix the range")
    files = {f: p for f, p in on_disk.items() if lo <= f <= hi}
    if not files:
        elsewhere = f"; on disk: {min(on_disk)}-{max(on_disk)}" if on_disk else ""
        raise InputError(
            f"no frames found in {lo}-{hi}: looked for {pattern.describe()}{elsewhere}",
            path=path,
            hint="check the path, the padding and the frame range",
        )
    missing = tuple(f for f in range(lo, hi + 1) if f not in files)
    return FrameSequence(pattern=pattern, first=lo, last=hi, files=files, missing=missing)


def has_frame_number(path: str) -> bool:
    """True when ``path`` names a frame of a sequence (or is a pattern), False for a still like ``XYZ.exr``."""
    try:
        parse_pattern(path)
    except InputError:
        return False
    return True
