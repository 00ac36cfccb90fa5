"""Per-frame camera motion: the dominant (background) motion of the plate as a homography from
the reference frame, for camera-motion transfer and stabilisation.

Features spread over the whole frame are followed like the planar tracker's
(``alignment``): each frame is measured against an *anchor* frame through a
prediction, and RANSAC keeps the features that move together — the background
of a shot, not the actors crossing it, as long as the background holds most of
the features. When the camera has moved so far that most of the anchor's
features are gone, the current frame becomes the next anchor (its homography
from the reference is known), so error grows only from anchor to anchor.

Frames are (H, W, 3) uint8 sRGB; homographies map reference-frame pixels to the
frame's pixels (y down, pixel centres at +0.5). ``similarity`` is the
least-squares translate/rotate/scale closest to each homography over the frame,
which a Nuke Transform node carries; JSON keeps both.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.analysis import alignment, nuke_export
from engine.errors import InputError
from engine.io.atomic import write_text_atomic


@dataclass
class CameraMotion:
    """``homographies[frame]``: 3x3 reference -> frame; ``similarities[frame]``: (2, 3);
    ``reliable[frame]``: measured against an anchor (not only predicted)."""

    reference_frame: int
    width: int
    height: int
    homographies: dict[int, np.ndarray] = field(default_factory=dict)
    similarities: dict[int, np.ndarray] = field(default_factory=dict)
    reliable: dict[int, bool] = field(default_factory=dict)
    anchors: list[int] = field(default_factory=list)


def _grid(width: int, height: int, step: int = 16) -> np.ndarray:
    xs, ys = np.meshgrid(np.linspace(0, width, step), np.linspace(0, height, step))
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def closest_similarity(h: np.ndarray, width: int, height: int) -> np.ndarray:
    """The (2, 3) similarity [a -b tx; b a ty] nearest (least squares over the frame) to homography ``h``."""
    src = _grid(width, height)
    dst = alignment.apply(h, src)
    rows = np.zeros((2 * len(src), 4))
    rows[0::2] = np.stack([src[:, 0], -src[:, 1], np.ones(len(src)), np.zeros(len(src))], axis=1)
    rows[1::2] = np.stack([src[:, 1], src[:, 0], np.zeros(len(src)), np.ones(len(src))], axis=1)
    a, b, tx, ty = np.linalg.lstsq(rows, dst.reshape(-1), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


def track_camera(frames: Sequence[tuple[int, np.ndarray]], reference_frame: int,
                 progress: Callable[[int], None] | None = None, features: int = 800,
                 reanchor_below: float = 0.5, min_inliers: int = 20) -> CameraMotion:
    """Camera motion over ``(frame, (H, W, 3) uint8 sRGB)`` (frame order, all in memory)
    relative to ``reference_frame``."""
    numbers = [frame for frame, _image in frames]
    if reference_frame not in numbers:
        raise InputError(f"the reference frame {reference_frame} is not among the frames analysed "
                         f"({numbers[0]}-{numbers[-1]})", frame=reference_frame, hint="pick a frame inside the range")
    greys = {frame: alignment.grey(image) for frame, image in frames}
    height, width = greys[reference_frame].shape
    motion = CameraMotion(reference_frame, width, height)
    identity = np.eye(3)
    motion.homographies[reference_frame] = identity
    motion.reliable[reference_frame] = True
    motion.anchors.append(reference_frame)
    spacing = max(8, int(min(width, height) / 40))
    reference_points = alignment.features(greys[reference_frame], count=features, spacing=spacing, cells=(8, 6))
    if len(reference_points) < 20:
        raise InputError(f"the reference frame has too little texture to follow the camera "
                         f"({len(reference_points)} features)", frame=reference_frame,
                         hint="pick another reference frame")
    if progress:
        progress(reference_frame)
    start = numbers.index(reference_frame)
    for direction in (1, -1):
        anchor, anchor_points, anchor_h = reference_frame, reference_points, identity  # anchor_h: reference -> anchor
        to_current = identity  # anchor -> previous frame
        last_step: np.ndarray | None = None  # the last frame-to-frame motion
        previous_frame = reference_frame
        index = start + direction
        while 0 <= index < len(numbers):
            frame = numbers[index]
            seen = alignment.apply(to_current, anchor_points)
            in_view = (seen[:, 0] > 0) & (seen[:, 1] > 0) & (seen[:, 0] < width) & (seen[:, 1] < height)
            step = (alignment.frame_to_frame(greys[previous_frame], greys[frame], seen[in_view], prior=last_step)
                    if in_view.sum() >= 8 else None)
            predicted = step.homography @ to_current if step is not None and step.reliable else to_current
            fit = alignment.refine_to_reference(greys[anchor], anchor_points, greys[frame], predicted)
            if fit is not None:
                fit = alignment.simpler_if_as_good(fit)
            # Reliable: enough background features agree. (Not a share of all features:
            # a large actor in front of the camera can hold most of them.)
            measured = fit is not None and fit.inliers >= min_inliers
            if measured:
                to_current = fit.homography
                motion.reliable[frame] = True
            else:
                to_current = predicted
                motion.reliable[frame] = False
            previous_h = motion.homographies[previous_frame]
            motion.homographies[frame] = to_current @ anchor_h
            # The camera moves smoothly: the next step is expected to look like this one.
            last_step = motion.homographies[frame] @ np.linalg.inv(previous_h)
            now = alignment.apply(to_current, anchor_points)
            still_in = float(np.mean((now[:, 0] > 8) & (now[:, 1] > 8) & (now[:, 0] < width - 8)
                                     & (now[:, 1] < height - 8)))
            if not measured or not fit.reliable or still_in < reanchor_below:
                # Most of the anchor's features have left the frame, or fewer than a quarter of
                # those in view still agree (the view has changed too much to match well):
                # start again from here; error then grows only from anchor to anchor.
                anchor_h = motion.homographies[frame]
                anchor = frame
                anchor_points = alignment.features(greys[frame], count=features, spacing=spacing, cells=(8, 6))
                to_current = identity
                motion.anchors.append(frame)
            previous_frame = frame
            if progress:
                progress(frame)
            index += direction
    for frame, h in motion.homographies.items():
        motion.similarities[frame] = closest_similarity(h, width, height)
    return motion


def reprojection_error(estimate: np.ndarray, truth: np.ndarray, width: int, height: int) -> float:
    """Mean distance (px) between where two homographies put a grid of points over the frame."""
    grid = _grid(width, height)
    return float(np.linalg.norm(alignment.apply(estimate, grid) - alignment.apply(truth, grid), axis=1).mean())


def to_json(motion: CameraMotion, fps: float, plate: str | None = None) -> dict:
    frames = sorted(motion.homographies)
    return {
        "format": "retake-camera-motion",
        "version": 1,
        "plate": plate,
        "width": motion.width,
        "height": motion.height,
        "fps": fps,
        "coordinates": "frame pixels, origin top-left, x right, y down, pixel centres at +0.5; each homography "
                       "maps the reference frame's pixels to the frame's",
        "reference_frame": motion.reference_frame,
        "anchors": sorted(motion.anchors),
        "frames": [{"frame": f, "homography": np.round(motion.homographies[f], 9).tolist(),
                    "similarity": np.round(motion.similarities[f], 9).tolist(),
                    "nuke_transform": dict(zip(("translate_x", "translate_y", "rotate", "scale"),
                                               (round(v, 5) for v in nuke_export.similarity_to_nuke(
                                                   motion.similarities[f], motion.width, motion.height)))),
                    "reliable": bool(motion.reliable[f])} for f in frames],
    }


def to_nuke(motion: CameraMotion, plate: str | None = None) -> str:
    label = "camera motion" + (f" of {os.path.basename(plate)}" if plate else "") + \
            f", reference {motion.reference_frame} (invert to stabilise)"
    return nuke_export.join([nuke_export.transform("RetakeCamera", motion.similarities, motion.width, motion.height,
                                                   label=label)])


def write(motion: CameraMotion, path: str, width: int, height: int, fps: float, plate: str | None = None) -> None:
    extension = os.path.splitext(path)[1].lower()
    if extension == ".json":
        text = json.dumps(to_json(motion, fps, plate), indent=1)
    elif extension == ".nk":
        text = to_nuke(motion, plate)
    else:
        raise ValueError(f"unknown camera motion format {extension!r}")
    write_text_atomic(path, text)
