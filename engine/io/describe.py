"""What ``retake info`` prints: a plate described as JSON-ready data and as text."""
from __future__ import annotations

from fractions import Fraction
from typing import Any

from engine.io.header import Chromaticities, PlateInfo, Window


def compress_frames(frames: tuple[int, ...] | list[int]) -> str:
    """Frame numbers as ranges: (1003, 1004, 1005, 1010) -> "1003-1005,1010"; () -> ""."""
    runs: list[str] = []
    ordered = sorted(set(frames))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        runs.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(runs)


def _fps(fps: Fraction | None) -> str | None:
    if fps is None:
        return None
    return str(fps.numerator) if fps.denominator == 1 else f"{fps.numerator}/{fps.denominator}"


def _window(window: Window) -> list[int]:
    return [window.x_min, window.y_min, window.x_max, window.y_max]


def _chromaticities(value: Chromaticities | None) -> dict[str, list[float]] | None:
    if value is None:
        return None
    return {"red": list(value.red), "green": list(value.green), "blue": list(value.blue), "white": list(value.white)}


def describe_plate(info: PlateInfo) -> dict[str, Any]:
    """A plate as JSON-ready data (windows as [x_min, y_min, x_max, y_max], inclusive)."""
    header = info.header
    return {
        "path": info.path,
        "kind": info.kind,
        "format": header.file_format,
        "first": info.first,
        "last": info.last,
        "count": info.frame_count,
        "missing": compress_frames(info.missing),
        "missing_count": len(info.missing),
        "fps": _fps(info.fps),
        "timecode": info.timecode,
        "width": info.width,
        "height": info.height,
        "data_window": _window(header.data_window),
        "display_window": _window(header.display_window),
        "pixel_aspect": header.pixel_aspect,
        "channels": list(header.channels),
        "selected": list(header.selected),
        "pixel_type": header.pixel_type,
        "parts": list(header.parts),
        "part": header.part,
        "views": list(header.views),
        "view": header.view,
        "chromaticities": _chromaticities(header.chromaticities),
        "aces_container": header.aces_container,
        "compression": header.compression,
        "colorspace_hint": header.colorspace_hint,
        "attributes": dict(header.attributes),
    }


def _short_list(items: list[str], limit: int = 12) -> str:
    if not items:
        return "-"
    shown = " ".join(items[:limit])
    return shown + (f" … (+{len(items) - limit})" if len(items) > limit else "")


def format_description(d: dict[str, Any]) -> str:
    """A few aligned lines for a terminal, from ``describe_plate``'s dict."""
    display = d["display_window"]
    data = d["data_window"]
    resolution = f"{d['width']}x{d['height']}"
    if d["pixel_aspect"] != 1.0:
        resolution += f" (pixel aspect {d['pixel_aspect']:g})"
    if data != display:
        resolution += f", data window {data[0]},{data[1]}-{data[2]},{data[3]}"
    frames = f"{d['first']}-{d['last']} ({d['count']} frame{'s' if d['count'] != 1 else ''})"
    if d["missing"]:
        frames += f", missing {d['missing']}"
    if d["chromaticities"]:
        c = d["chromaticities"]
        primaries = "  ".join(f"{k} {v[0]:.5g},{v[1]:.5g}" for k, v in c.items())
    else:
        primaries = "not stated (Rec.709 assumed)" if d["format"] == "openexr" else "not stated"
    colour = d["colorspace_hint"] or "not stated"
    if d["aces_container"]:
        colour += " (ACES container)"
    rows = [
        ("plate", f"{d['path']} ({d['kind']}, {d['format']})"),
        ("frames", frames),
        ("fps", d["fps"] or "not stated"),
        ("timecode", d["timecode"] or "-"),
        ("resolution", resolution),
        ("channels", f"{_short_list(d['channels'])}  (reading {' '.join(d['selected'])}, {d['pixel_type']})"),
    ]
    if d["parts"]:
        rows.append(("parts", f"{' '.join(d['parts'])}  (reading {d['part']})"))
    if d["views"]:
        rows.append(("views", f"{' '.join(d['views'])}  (reading {d['view']})"))
    rows += [
        ("compression", d["compression"] or "-"),
        ("primaries", primaries),
        ("colour space", colour),
    ]
    if "check" in d:
        check = d["check"]
        rows.append(("check", f"{check['frames_decoded']} frame(s) decoded, {len(check['problems'])} problem(s)"))
        rows += [("", problem) for problem in check["problems"]]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in rows)
