from fractions import Fraction

import pytest

from engine.errors import InputError
from engine.timecode import frames_to_timecode, offset_timecode, timecode_to_frames


def test_non_drop_frame():
    assert timecode_to_frames("01:00:00:00", Fraction(24)) == 86400
    assert frames_to_timecode(86400 + 47, Fraction(24)) == "01:00:01:23"
    assert offset_timecode("00:59:59:23", 1, Fraction(24000, 1001)) == "01:00:00:00"
    assert offset_timecode("23:59:59:24", 1, Fraction(25)) == "00:00:00:00"


def test_drop_frame_skips_two_frame_numbers_each_minute_but_every_tenth():
    fps = Fraction(30000, 1001)
    assert offset_timecode("00:00:59;29", 1, fps) == "00:01:00;02"
    assert offset_timecode("00:09:59;29", 1, fps) == "00:10:00;00"
    for count in (0, 1799, 1800, 17982, 107892, 123456):
        assert timecode_to_frames(frames_to_timecode(count, fps, drop_frame=True), fps) == count


def test_malformed_timecode():
    with pytest.raises(InputError, match="not a SMPTE timecode"):
        timecode_to_frames("1h", Fraction(24))
