"""What the tracking recipes share: plate frames for the trackers, images warped by
homographies, and motion blur along a homography path.

Coordinates are continuous pixels, x right, y down, pixel centres at +0.5 (as
``engine.analysis``); a homography maps one picture's coordinates to another's.
Images are (H, W, C) float32 scene-linear ACEScg.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import cv2
import numpy as np

from engine.errors import InputError, JobError
from engine.transforms import TransformContext

__all__ = ["ANALYSIS_SIDE", "analysis_frames", "shared_analysis", "scale_homography", "warp_image", "blurred_warp", "read_picture",
           "interpolate", "check_frame"]

# Trackers run on frames at most this many pixels on their longer side: enough for
# sub-pixel tracks (they refine to the reference frame), and 1.5 MB a frame in memory.
ANALYSIS_SIDE = 960


_SHARED: "OrderedDict[tuple, object]" = OrderedDict()
_SHARED_KEPT = 8


def shared_analysis(context: TransformContext, what: tuple, compute: Callable[[], object]) -> object:
    """``compute()``, or what it gave before in this process for the same plate, range, working
    size and ``what``: the variants of a campaign (one ``retake run``) track the plate once.

    The plate counts by its path and its files' sizes and times, so a plate rendered anew
    between two runs of a Python session is analysed again.
    """
    plate = context.plate
    stamp: tuple = ()
    if plate is not None:
        import os

        first = getattr(plate, "path", "")
        stamp = (first,)
        try:
            from engine.io.plates import open_plate
            with open_plate(first) as opened:
                names = [opened.frame_path(f) for f in (opened.info.first, opened.info.last)]
            stamp += tuple((os.path.getsize(n), os.path.getmtime(n)) for n in names if n and os.path.exists(n))
        except Exception:  # noqa: BLE001 - a stamp that cannot be made means: do not share
            return compute()
    else:
        return compute()
    key = (stamp, context.frames, context.size, what)
    if key in _SHARED:
        _SHARED.move_to_end(key)
        return _SHARED[key]
    value = compute()
    _SHARED[key] = value
    if len(_SHARED) > _SHARED_KEPT:
        _SHARED.popitem(last=False)
    return value


def check_frame(name: str, frame: int, context: TransformContext) -> None:
    first, last = context.frames
    if not first <= frame <= last:
        raise JobError(f"transform.{name} {frame} is not a frame of the plate ({first}-{last})",
                       path=f"$.transform.{name}", hint="give a frame number inside the plate's range")


def analysis_frames(context: TransformContext, progress: Callable[[int], None] | None = None
                    ) -> tuple[list[tuple[int, np.ndarray]], float]:
    """Every frame of the plate as (frame, (h, w, 3) uint8 sRGB) for the trackers, and the scale
    analysis px / output px. Made through OpenColorIO (``engine.analysis.frames.display_rgb8``)."""
    from engine.analysis.frames import display_rgb8

    width, height = context.size
    scale = min(1.0, ANALYSIS_SIDE / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    frames = []
    first, last = context.frames
    for frame in range(first, last + 1):
        if context.cancelled():
            from engine.errors import CancelledError
            raise CancelledError("cancelled while tracking the plate; nothing was written")
        working = context.source(frame)
        if scale < 1.0:
            working = cv2.resize(np.ascontiguousarray(working[..., :3]), size, interpolation=cv2.INTER_AREA)
        frames.append((frame, display_rgb8(context.colour, working)))
        if progress:
            progress(frame)
    return frames, size[0] / width


def scale_homography(h: np.ndarray, scale: float) -> np.ndarray:
    """A homography measured on frames ``scale`` times the output's size, on the output's pixels."""
    d = np.diag([scale, scale, 1.0])
    return np.linalg.inv(d) @ h @ d


def _index(h: np.ndarray) -> np.ndarray:
    """The same map between pixel indices (OpenCV's convention: centres at integers)."""
    shift = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]], dtype=np.float64)
    unshift = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]], dtype=np.float64)
    return unshift @ h @ shift


def warp_image(image: np.ndarray, h: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (h0, w0, C) moved by ``h`` (its pixels -> output pixels) onto a (W, H) = ``size`` frame.

    Returns (the picture (H, W, C) float32, its coverage (H, W) float32 0..1: where the
    image lands; 0 outside, soft at its edges). Bicubic, so a still keeps its sharpness.
    """
    width, height = size
    m = _index(h)
    flags = cv2.INTER_CUBIC
    picture = cv2.warpPerspective(np.ascontiguousarray(image, dtype=np.float32), m, (width, height), flags=flags,
                                  borderMode=cv2.BORDER_REPLICATE)
    if picture.ndim == 2:
        picture = picture[..., None]
    ones = np.ones(image.shape[:2], dtype=np.float32)
    coverage = cv2.warpPerspective(ones, m, (width, height), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return picture, np.clip(coverage, 0.0, 1.0)


def interpolate(previous: np.ndarray, current: np.ndarray, following: np.ndarray, t: float) -> np.ndarray:
    """The homography at sub-frame offset ``t`` in [-1, 1] around ``current`` (linear in its entries)."""
    other = following if t >= 0 else previous
    a = abs(t)
    h = (1.0 - a) * current / current[2, 2] + a * other / other[2, 2]
    return h / h[2, 2]


def blurred_warp(image: np.ndarray, path: Callable[[float], np.ndarray], size: tuple[int, int], shutter: float,
                 samples: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """``warp_image`` averaged over the shutter: ``path(t)`` is the homography at sub-frame offset
    t, sampled evenly over [-shutter / 2, shutter / 2] (a centred shutter, as a camera's 180 deg
    at 0.5). shutter 0 is one sharp warp."""
    offsets = [0.0] if shutter <= 0 else list(np.linspace(-shutter / 2.0, shutter / 2.0, samples))
    total = None
    cover = None
    for t in offsets:
        picture, coverage = warp_image(image, path(float(t)), size)
        total = picture * coverage[..., None] if total is None else total + picture * coverage[..., None]
        cover = coverage if cover is None else cover + coverage
    assert total is not None and cover is not None
    coverage = cover / len(offsets)
    picture = total / np.maximum(cover, 1e-6)[..., None]
    return picture.astype(np.float32), coverage.astype(np.float32)


def read_picture(path: str, colour: "object", what: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A still the job names, in the working space: ((h, w, 3) float32 ACEScg, its alpha (h, w) or None).

    Its colour space is what the file says (``Colour.colorspace_for_header``), as for keyframes.
    """
    from engine.io.plates import open_still

    try:
        with open_still(path) as still:
            pixels = still.read(still.info.first)
            header = still.info.header
    except InputError as error:
        raise JobError(f"cannot read the {what} {path!r}: {error}", path=f"$.transform.{what}",
                       hint="give an EXR, PNG, TIFF or DPX still") from error
    if pixels.ndim != 3 or pixels.shape[2] < 3:
        raise JobError(f"the {what} {path!r} is not an RGB image", path=f"$.transform.{what}",
                       hint="give an RGB or RGBA image")
    if not np.isfinite(pixels).all():
        raise JobError(f"the {what} {path!r} holds NaN/Inf values", path=f"$.transform.{what}",
                       hint="fix the image")
    space = colour.colorspace_for_header(header)  # type: ignore[attr-defined]
    rgb = colour.to_working(np.ascontiguousarray(pixels[..., :3], dtype=np.float32), space)  # type: ignore[attr-defined]
    alpha = np.ascontiguousarray(pixels[..., 3], dtype=np.float32) if pixels.shape[2] >= 4 else None
    return np.ascontiguousarray(rgb, dtype=np.float32), alpha
