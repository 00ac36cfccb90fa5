"""Frames as the analysis models see them: 8-bit sRGB, made by OpenColorIO.

The MediaPipe models were trained on ordinary sRGB photographs and video. A
working-space (ACEScg, scene-linear) frame goes to them through the config's
``sRGB - Display`` with the ``Un-tone-mapped`` view: a colorimetric conversion,
so footage that began as sRGB video comes back as the same sRGB values the
model expects, and HDR highlights above display white clip (which the models
never saw anyway). Configs without that view fall back to the ACES 2.0 SDR view.

Coordinates used throughout ``engine.analysis``: pixels, x to the right, y down,
the centre of pixel (i, j) at (i + 0.5, j + 0.5), over the plate's display window.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from engine.colour import Colour

DISPLAY = "sRGB - Display"
VIEWS = ("Un-tone-mapped", "ACES 2.0 - SDR 100 nits (Rec.709)")


def display_rgb8(colour: "Colour", working: np.ndarray) -> np.ndarray:
    """(H, W, 3|4) float32 scene-linear ACEScg -> (H, W, 3) uint8 sRGB display code values."""
    views = set(colour.config.getViews(DISPLAY)) if DISPLAY in colour.config.getDisplays() else set()
    view = next((v for v in VIEWS if v in views), None)
    if view is None:
        display = colour.config.getDefaultDisplay()
        view = colour.config.getDefaultView(display)
    else:
        display = DISPLAY
    encoded = colour.to_display(np.ascontiguousarray(working[..., :3]), display, view)
    return (np.clip(encoded, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def plate_frames_rgb8(path: str, *, first: int | None = None, last: int | None = None,
                      colorspace: str | None = None, ocio_config: str | None = None,
                      step: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """Stream ``(frame, (H, W, 3) uint8 sRGB)`` over a plate, one frame in memory at a time.

    ``colorspace``: the plate's OCIO colour space; None reads it from the file
    (the same rule as the pipeline's). Frame numbers are the plate's own (absolute).
    Missing frames are skipped: an analysis has nothing to say about them.
    """
    from engine.colour import Colour
    from engine.io.plates import open_plate

    colour = Colour(ocio_config)
    with open_plate(path, first=first, last=last) as plate:
        info = plate.info
        source = colorspace or colour.colorspace_for_header(info.header)
        missing = set(info.missing)
        for frame in range(info.first, info.last + 1, step):
            if frame in missing:
                continue
            working = colour.to_working(plate.read(frame)[..., :3], source)
            yield frame, display_rgb8(colour, working)
