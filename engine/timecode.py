"""SMPTE timecode <-> frame counts, so outputs carry the source's timecode.

Drop-frame (``;`` separator) is supported for the 29.97 and 59.94 rates.
"""
from __future__ import annotations

import re
from fractions import Fraction

from engine.errors import InputError

_TC_RE = re.compile(r"^(\d{1,2})[:;.](\d{2})[:;.](\d{2})([:;.])(\d{2,3})$")


def nominal_rate(fps: Fraction) -> int:
    """The frame count per timecode second: 24 for 23.976, 30 for 29.97."""
    return max(1, round(float(fps)))


def is_drop_frame(fps: Fraction, timecode: str) -> bool:
    return ";" in timecode and nominal_rate(fps) in (30, 60) and fps.denominator == 1001


def timecode_to_frames(timecode: str, fps: Fraction) -> int:
    """``"01:00:00:00"`` at 24 fps -> 86400. Raises InputError on a malformed timecode."""
    match = _TC_RE.match(timecode.strip())
    if not match:
        raise InputError(f"{timecode!r} is not a SMPTE timecode", hint='write it as "HH:MM:SS:FF"')
    hours, minutes, seconds, _sep, frames = (int(g) if g.isdigit() else g for g in match.groups())
    rate = nominal_rate(fps)
    total = ((hours * 60 + minutes) * 60 + seconds) * rate + frames
    if is_drop_frame(fps, timecode):
        drop = 2 * (rate // 30)
        total_minutes = hours * 60 + minutes
        total -= drop * (total_minutes - total_minutes // 10)
    return total


def frames_to_timecode(count: int, fps: Fraction, drop_frame: bool = False) -> str:
    """86400 at 24 fps -> ``"01:00:00:00"`` (wraps at 24 hours, as decks do)."""
    rate = nominal_rate(fps)
    separator = ":"
    if drop_frame and rate in (30, 60):
        separator = ";"
        drop = 2 * (rate // 30)
        per_ten_minutes = rate * 600 - drop * 9
        per_minute = rate * 60 - drop
        tens, rest = divmod(count, per_ten_minutes)
        if rest > drop:
            count += drop * 9 * tens + drop * ((rest - drop) // per_minute)
        else:
            count += drop * 9 * tens
    count %= rate * 86400
    frames = count % rate
    seconds = count // rate
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}{separator}{frames:02d}"


def offset_timecode(start: str, offset: int, fps: Fraction) -> str:
    """The timecode ``offset`` frames after ``start``, keeping drop-frame if ``start`` has it."""
    drop = is_drop_frame(fps, start)
    return frames_to_timecode(timecode_to_frames(start, fps) + offset, fps, drop_frame=drop)
