"""Contact sheets: rows of frames as one 8-bit sRGB PNG, through the OCIO SDR view.

For campaign summaries (``engine.campaign``) and the recipe benchmark. Frames of
different sizes (a reframe's 9:16 next to the 16:9 source) are shown at one height.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from engine.colour import Colour
from engine.io.atomic import atomic_output

__all__ = ["display_frame", "write_sheet", "campaign_sheet", "pick_frames"]

VIEW = ("sRGB - Display", "ACES 2.0 - SDR 100 nits (Rec.709)")


def display_frame(path: str, colour: Colour, height: int, colorspace: str | None = None,
                  frame: int | None = None) -> np.ndarray:
    """A frame (``frame`` of a sequence pattern, else the file's first) as (height, w, 3) float32
    display values 0..1 (its colour space from the file unless given)."""
    from engine.io.plates import open_plate, open_still

    # A single file is exactly that file (open_plate would take it for its whole sequence).
    with (open_still(path) if frame is None else open_plate(path)) as plate:
        pixels = plate.read(plate.info.first if frame is None else frame)[..., :3]
        space = colour.resolve_colorspace(colorspace) if colorspace else colour.colorspace_for_header(plate.info.header)
    shown = np.clip(colour.to_display(colour.to_working(np.ascontiguousarray(pixels, dtype=np.float32), space), *VIEW),
                    0.0, 1.0)
    h, w = shown.shape[:2]
    return cv2.resize(shown, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)


def write_sheet(rows: list[list[np.ndarray]], path: str, gap: int = 6) -> None:
    """Rows of (h, w_i, 3) display images (one h per row) -> a PNG at ``path``, written atomically."""
    import OpenImageIO as oiio

    lines = []
    for images in rows:
        height = images[0].shape[0]
        line = images[0]
        for image in images[1:]:
            line = np.concatenate([line, np.ones((height, gap, 3), np.float32), image], axis=1)
        lines.append(line)
    width = max(line.shape[1] for line in lines)
    padded = []
    for line in lines:
        padded.append(np.pad(line, ((0, 0), (0, width - line.shape[1]), (0, 0)), constant_values=1.0))
        padded.append(np.ones((gap, width, 3), np.float32))
    sheet = np.ascontiguousarray(np.concatenate(padded[:-1], axis=0), dtype=np.float32)
    with atomic_output(path) as tmp:
        if not oiio.ImageBuf(sheet).write(tmp, "uint8"):
            raise RuntimeError(f"could not write the contact sheet {path}: {oiio.geterror()}")


def pick_frames(first: int, last: int, count: int = 4) -> list[int]:
    return sorted({first + round(i * (last - first) / max(1, count - 1)) for i in range(count)})


def campaign_sheet(jobs: list[tuple[str | None, Any]], results: list[Any], path: str, height: int = 180) -> None:
    """The plate on top, then each variant's output, on four frames of the rendered range."""
    colour = Colour(jobs[0][1].ocio)
    frames = sorted(set(results[0].rendered) | set(results[0].skipped))
    if not frames:
        return
    picks = pick_frames(frames[0], frames[-1])
    plate = jobs[0][1].plate
    rows = [[display_frame(plate.path, colour, height, plate.colorspace, frame=f) for f in picks]]
    for _name, job in jobs:
        rows.append([display_frame(job.output.path, colour, height, frame=f) for f in picks])
    write_sheet(rows, path)
