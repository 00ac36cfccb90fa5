"""Sequence patterns: the spellings, the # rule, ranges and missing frames."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.errors import InputError
from engine.io.sequences import find_sequence, format_frame_path, parse_pattern
from tests.data_paths import write_exr


@pytest.fixture
def plate_dir(tmp_path: Path) -> Path:
    """plate.1001..1005.exr without 1003, plus files that must not match."""
    pixel = np.zeros((2, 2, 3), np.float16)
    for frame in (1001, 1002, 1004, 1005):
        write_exr(tmp_path / f"plate.{frame}.exr", pixel)
    (tmp_path / "plate.01001.exr").write_bytes(b"")  # 5 digits: another sequence
    (tmp_path / "other.1001.exr").write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize(
    "name",
    ["plate.####.exr", "plate.%04d.exr", "plate.@@@@.exr", "plate.1002.exr"],
)
def test_spellings_find_the_same_frames(plate_dir: Path, name: str) -> None:
    sequence = find_sequence(str(plate_dir / name))
    assert (sequence.first, sequence.last) == (1001, 1005)
    assert list(sequence.files) == [1001, 1002, 1004, 1005]
    assert sequence.missing == (1003,)
    assert sequence.files[1004] == str(plate_dir / "plate.1004.exr")
    assert sequence.frame_path(1003) == str(plate_dir / "plate.1003.exr")


@pytest.mark.parametrize("name", ["plate.1001-1006#.exr", "plate.[1001-1006].exr", "plate.1001-1006@@@@.exr"])
def test_ranges_in_the_pattern(plate_dir: Path, name: str) -> None:
    sequence = find_sequence(str(plate_dir / name))
    assert (sequence.first, sequence.last) == (1001, 1006)
    assert sequence.missing == (1003, 1006)


def test_hash_rule_nuke_without_range_fileseq_with_range() -> None:
    assert parse_pattern("a.####.exr").padding == 4  # Nuke: one # per digit
    assert parse_pattern("a.#.exr").padding == 1
    assert parse_pattern("a.1-10#.exr").padding == 4  # fileseq: # = 4 digits
    assert parse_pattern("a.1-10##.exr").padding == 8
    assert parse_pattern("a.[0001-0010].exr").padding == 4
    assert parse_pattern("a.[1-10].exr").padding == 1


def test_explicit_range_narrows_and_widens(plate_dir: Path) -> None:
    narrow = find_sequence(str(plate_dir / "plate.####.exr"), 1002, 1004)
    assert list(narrow.files) == [1002, 1004] and narrow.missing == (1003,)
    wide = find_sequence(str(plate_dir / "plate.####.exr"), 999, 1007)
    assert wide.missing == (999, 1000, 1003, 1006, 1007)
    only_first = find_sequence(str(plate_dir / "plate.####.exr"), first=1004)
    assert (only_first.first, only_first.last) == (1004, 1005)


def test_five_digit_pattern_is_another_sequence(plate_dir: Path) -> None:
    sequence = find_sequence(str(plate_dir / "plate.#####.exr"))
    assert list(sequence.files) == [1001]


def test_nothing_found_says_what_was_looked_for(plate_dir: Path) -> None:
    with pytest.raises(InputError, match=r"looked for .*shot\.####\.exr \(4-digit frame numbers\)"):
        find_sequence(str(plate_dir / "shot.####.exr"))
    with pytest.raises(InputError, match="on disk: 1001-1005"):
        find_sequence(str(plate_dir / "plate.####.exr"), 2001, 2010)
    with pytest.raises(InputError, match="no frame number"):
        find_sequence(str(plate_dir / "plate.exr"))
    with pytest.raises(InputError, match="after the last"):
        find_sequence(str(plate_dir / "plate.####.exr"), 1005, 1001)


def test_format_frame_path() -> None:
    assert format_frame_path("out/x.####.exr", 1001) == "out/x.1001.exr"
    assert format_frame_path("out/x.%04d.exr", 7) == "out/x.0007.exr"
    assert format_frame_path("out/x.@@@@.exr", 12) == "out/x.0012.exr"
    assert format_frame_path("out/x.#.exr", 5) == "out/x.5.exr"
    assert format_frame_path("out/x.####.exr", 12345) == "out/x.12345.exr"
    assert format_frame_path("/abs/x_v2.1001-1100#.exr", 1050) == "/abs/x_v2.1050.exr"
