"""Nuke node scripts (``.nk`` text) for tracks: Tracker4, CornerPin2D and Transform nodes.

The text is what Nuke itself writes when nodes are copied (``set cut_paste_input
[stack 0]``, a ``version`` line, then the nodes with ``inputs 0``), so a file can
be pasted into the node graph or read with File > Import Script. Animated values
are Nuke curves: ``{curve x1001 v1001 v1002 ...}`` where ``xN`` sets the frame of
the next value and consecutive values are consecutive frames; a gap restarts
with a new ``xN``. The Tracker4 ``tracks`` table follows the 31-column layout
Nuke saves (enable, name, track_x, track_y, offsets, T/R/S, error, pattern and
search boxes, keyframe columns).

Coordinates: the analysis works in frame pixels with y down (see ``frames``);
Nuke's origin is the bottom-left corner with y up, so ``y_nuke = height - y``.
Frame numbers are the plate's own (absolute).
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np

NUKE_VERSION_LINE = "version 13.2 v1"

_TRACKER4_COLUMNS = (
    "{ 5 1 20 enable e 1 }", "{ 3 1 75 name name 1 }", "{ 2 1 58 track_x track_x 1 }",
    "{ 2 1 58 track_y track_y 1 }", "{ 2 1 63 offset_x offset_x 1 }", "{ 2 1 63 offset_y offset_y 1 }",
    "{ 4 1 27 T T 1 }", "{ 4 1 27 R R 1 }", "{ 4 1 27 S S 1 }", "{ 2 0 45 error error 1 }",
    "{ 1 1 0 error_min error_min 1 }", "{ 1 1 0 error_max error_max 1 }", "{ 1 1 0 pattern_x pattern_x 1 }",
    "{ 1 1 0 pattern_y pattern_y 1 }", "{ 1 1 0 pattern_r pattern_r 1 }", "{ 1 1 0 pattern_t pattern_t 1 }",
    "{ 1 1 0 search_x search_x 1 }", "{ 1 1 0 search_y search_y 1 }", "{ 1 1 0 search_r search_r 1 }",
    "{ 1 1 0 search_t search_t 1 }", "{ 2 1 0 key_track key_track 1 }", "{ 2 1 0 key_search_x key_search_x 1 }",
    "{ 2 1 0 key_search_y key_search_y 1 }", "{ 2 1 0 key_search_r key_search_r 1 }",
    "{ 2 1 0 key_search_t key_search_t 1 }", "{ 2 1 0 key_track_x key_track_x 1 }",
    "{ 2 1 0 key_track_y key_track_y 1 }", "{ 2 1 0 key_track_r key_track_r 1 }",
    "{ 2 1 0 key_track_t key_track_t 1 }", "{ 2 1 0 key_centre_offset_x key_centre_offset_x 1 }",
    "{ 2 1 0 key_centre_offset_y key_centre_offset_y 1 }",
)


def _number(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"cannot write {value} into a Nuke curve")
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def curve(values: Mapping[int, float], constant: bool = False) -> str:
    """``{curve x1001 a b c x1010 d}`` from ``{frame: value}`` (frames in any order)."""
    parts = ["curve"]
    if constant:
        parts.append("K")
    previous: int | None = None
    for frame in sorted(values):
        if previous is None or frame != previous + 1:
            parts.append(f"x{frame}")
        parts.append(_number(float(values[frame])))
        previous = frame
    return "{" + " ".join(parts) + "}"


def _name(text: str) -> str:
    """A valid Nuke node name: letters, digits and underscores, not starting with a digit."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return name if name and not name[0].isdigit() else f"n{name}"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("[", "\\[").replace("$", "\\$") + '"'


def header() -> str:
    return f"set cut_paste_input [stack 0]\n{NUKE_VERSION_LINE}\n"


def tracker4(name: str, tracks: Mapping[str, Mapping[int, tuple[float, float]]], height: int, first: int, last: int,
             *, reference_frame: int | None = None, label: str = "", xpos: int = 0, ypos: int = 0) -> str:
    """A Tracker4 node with one track per entry of ``tracks`` (``{track name: {frame: (x, y)}}``,
    frame pixels, y down). A track is enabled on the frames it has and disabled on the others
    from ``first`` to ``last``, so Nuke does not hold a stale position where a face is gone."""
    rows: list[str] = []
    for track_name, points in tracks.items():
        if not points:
            continue
        start = min(points)
        enable = {frame: (1.0 if frame in points else 0.0) for frame in range(min(first, start), max(last, start) + 1)}
        xs = {frame: p[0] for frame, p in points.items()}
        ys = {frame: height - p[1] for frame, p in points.items()}
        rows.append(" { " + " ".join([
            curve(enable, constant=True), _quote(track_name), curve(xs), curve(ys),
            f"{{curve K x{start} 0}}", f"{{curve K x{start} 0}}", "1 0 0", "{curve}", "0 0",
            "-32 -32 32 32 -22 -22 22 22", "{curve}", *["{}"] * 10,
        ]) + " }")
    lines = [
        "Tracker4 {",
        " inputs 0",
        f" tracks {{ {{ 1 31 {len(rows)} }} ",
        "{ " + " \n".join(_TRACKER4_COLUMNS) + " \n} ",
        "{ ",
        *[row + " " for row in rows],
        "} ",
        "}",
        f" reference_frame {reference_frame if reference_frame is not None else first}",
    ]
    if label:
        lines.append(f" label {_quote(label)}")
    lines += [f" name {_name(name)}", f" xpos {xpos}", f" ypos {ypos}", "}"]
    return "\n".join(lines) + "\n"


def corner_pin(name: str, corners: Mapping[int, np.ndarray], reference: np.ndarray, height: int,
               *, label: str = "", xpos: int = 0, ypos: int = 0) -> str:
    """A CornerPin2D node: ``from1..4`` = the quad on the reference frame, ``to1..4`` animated
    (``corners``: {frame: (4, 2)} frame pixels, y down, in the order the quad was given)."""
    lines = ["CornerPin2D {", " inputs 0"]
    for i in range(4):
        xs = {frame: float(c[i][0]) for frame, c in corners.items()}
        ys = {frame: float(height - c[i][1]) for frame, c in corners.items()}
        lines.append(f" to{i + 1} {{{curve(xs)} {curve(ys)}}}")
    for i in range(4):
        lines.append(f" from{i + 1} {{{_number(float(reference[i][0]))} {_number(float(height - reference[i][1]))}}}")
    if label:
        lines.append(f" label {_quote(label)}")
    lines += [f" name {_name(name)}", f" xpos {xpos}", f" ypos {ypos}", "}"]
    return "\n".join(lines) + "\n"


def similarity_to_nuke(matrix: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    """A (2, 3) similarity in frame pixels (y down) -> Nuke Transform (translate x, translate y,
    rotate in degrees counter-clockwise, scale) about the frame centre, y up."""
    flip = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, float(height)], [0.0, 0.0, 1.0]])
    full = np.vstack([np.asarray(matrix, dtype=np.float64), [0.0, 0.0, 1.0]])
    nuke = flip @ full @ flip
    a, b = nuke[0, 0], nuke[1, 0]
    scale = math.hypot(a, b)
    rotate = math.degrees(math.atan2(b, a))
    centre = np.array([width / 2.0, height / 2.0, 1.0])
    moved = nuke @ centre
    return float(moved[0] - centre[0]), float(moved[1] - centre[1]), rotate, scale


def transform(name: str, matrices: Mapping[int, np.ndarray], width: int, height: int,
              *, label: str = "", xpos: int = 0, ypos: int = 0) -> str:
    """A Transform node animated from per-frame (2, 3) similarities (frame pixels, y down) that
    carry the reference frame's content to each frame (a match-move; Nuke's ``invert``
    stabilises). Centre: the middle of the frame."""
    tx, ty, rot, sc = {}, {}, {}, {}
    for frame, m in matrices.items():
        tx[frame], ty[frame], rot[frame], sc[frame] = similarity_to_nuke(m, width, height)
    lines = ["Transform {", " inputs 0", f" translate {{{curve(tx)} {curve(ty)}}}", f" rotate {curve(rot)}",
             f" scale {curve(sc)}", f" center {{{_number(width / 2)} {_number(height / 2)}}}"]
    if label:
        lines.append(f" label {_quote(label)}")
    lines += [f" name {_name(name)}", f" xpos {xpos}", f" ypos {ypos}", "}"]
    return "\n".join(lines) + "\n"


def parse_curve(text: str) -> dict[int, float]:
    """Read a ``{curve ...}`` back into ``{frame: value}`` (for tests and round trips)."""
    body = text.strip().lstrip("{").rstrip("}").split()
    if not body or body[0] != "curve":
        raise ValueError(f"not a curve: {text[:40]!r}")
    values: dict[int, float] = {}
    frame: int | None = None
    for token in body[1:]:
        if token.isalpha():
            continue
        if token.startswith("x"):
            frame = int(token[1:])
            continue
        if frame is None:
            frame = 0
        values[frame] = float(token)
        frame += 1
    return values


def check_braces(text: str) -> None:
    """Raise ValueError unless every brace outside quoted strings is balanced (a cheap syntax check)."""
    depth = 0
    quoted = False
    escaped = False
    for ch in text:
        if escaped:
            escaped = False
            continue
        if ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif not quoted and ch == "{":
            depth += 1
        elif not quoted and ch == "}":
            depth -= 1
            if depth < 0:
                raise ValueError("a closing brace without an opening one")
    if depth or quoted:
        raise ValueError("unbalanced braces or quotes")


def join(nodes: Sequence[str]) -> str:
    return header() + "".join(nodes)
