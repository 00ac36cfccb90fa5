"""The planar tracker: a quad given on one frame, followed across the plate (product swaps,
screen replacements, signs).

From the reference frame outwards in both directions, each frame gets:

1. a prediction: the previous frame's homography composed with the frame-to-frame
   motion of the plane's features (Lucas-Kanade + RANSAC);
2. the measurement: ``alignment.refine_to_reference`` finds the *reference*
   frame's features in the current frame through that prediction, so the
   result is tied to the reference frame (no drift) and features under an
   occluder are outliers of the RANSAC fit;
3. a reliability flag: too few agreeing features (the plane is mostly hidden or
   has left the frame) keeps the prediction and marks the frame unreliable.

Frames are (H, W, 3) uint8 sRGB; corners are frame pixels (y down, pixel centres
at +0.5), in the order given. Exports: JSON and a Nuke CornerPin2D (``.nk``).
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from engine.analysis import alignment, nuke_export
from engine.errors import InputError
from engine.io.atomic import write_text_atomic


@dataclass
class PlanarTrack:
    """``homographies[frame]``: 3x3 reference -> frame; ``corners[frame]``: (4, 2);
    ``valid[frame]``: whether the frame was measured (not only predicted)."""

    reference_frame: int
    quad: np.ndarray
    homographies: dict[int, np.ndarray] = field(default_factory=dict)
    corners: dict[int, np.ndarray] = field(default_factory=dict)
    valid: dict[int, bool] = field(default_factory=dict)
    inliers: dict[int, int] = field(default_factory=dict)


def _quad_mask(shape: tuple[int, int], quad: np.ndarray, shrink: float = 0.03) -> np.ndarray:
    """uint8 mask of the quad, pulled in slightly so features on its edges (often the border
    with whatever is behind the plane) are not used."""
    centre = quad.mean(axis=0)
    inner = centre + (quad - centre) * (1.0 - shrink)
    mask = np.zeros(shape, dtype=np.uint8)
    cv2.fillPoly(mask, [np.round(inner - 0.5).astype(np.int32)], 255)
    return mask


def _check_quad(quad: np.ndarray, width: int, height: int) -> None:
    if quad.shape != (4, 2) or not np.isfinite(quad).all():
        raise InputError("the quad needs 4 corners (x, y)", hint="give X1,Y1,X2,Y2,X3,Y3,X4,Y4")
    if not cv2.isContourConvex(np.round(quad).astype(np.int32)):
        raise InputError("the quad is not convex (corners crossed or out of order)",
                         hint="give the corners in order around the surface")
    area = abs(float(cv2.contourArea(quad.astype(np.float32))))
    if area < 64:
        raise InputError(f"the quad is too small ({area:.0f} square pixels)", hint="draw it around the surface")


def track_quad(frames: Sequence[tuple[int, np.ndarray]], reference_frame: int, quad: np.ndarray,
               progress: Callable[[int], None] | None = None, max_features: int = 500) -> PlanarTrack:
    """Follow ``quad`` ((4, 2) frame pixels on ``reference_frame``) through ``frames``
    (``(frame, (H, W, 3) uint8 sRGB)`` in frame order, all in memory: the tracker walks
    outwards from the reference frame in both directions)."""
    numbers = [frame for frame, _image in frames]
    if reference_frame not in numbers:
        raise InputError(f"the reference frame {reference_frame} is not among the frames analysed "
                         f"({numbers[0]}-{numbers[-1]})", frame=reference_frame, hint="pick a frame inside the range")
    greys = {frame: alignment.grey(image) for frame, image in frames}
    reference = greys[reference_frame]
    height, width = reference.shape
    quad = np.asarray(quad, dtype=np.float64)
    _check_quad(quad, width, height)
    points = alignment.features(reference, _quad_mask(reference.shape, quad), count=max_features, spacing=5)
    if len(points) < 12:
        raise InputError(f"the quad holds too little texture to track ({len(points)} features)",
                         frame=reference_frame, hint="draw the quad around a textured surface, or on another frame")
    track = PlanarTrack(reference_frame, quad)
    identity = np.eye(3)
    track.homographies[reference_frame] = identity
    track.corners[reference_frame] = quad.copy()
    track.valid[reference_frame] = True
    track.inliers[reference_frame] = len(points)
    if progress:
        progress(reference_frame)
    start = numbers.index(reference_frame)
    for direction in (1, -1):
        previous_frame = reference_frame
        current_h = identity
        index = start + direction
        while 0 <= index < len(numbers):
            frame = numbers[index]
            previous, current = greys[previous_frame], greys[frame]
            # Prediction: this plane's features as they were last seen, moved frame to frame.
            seen = alignment.apply(current_h, points)
            in_view = (seen[:, 0] > 0) & (seen[:, 1] > 0) & (seen[:, 0] < width) & (seen[:, 1] < height)
            step = alignment.frame_to_frame(previous, current, seen[in_view]) if in_view.sum() >= 8 else None
            predicted = step.homography @ current_h if step is not None and step.reliable else current_h
            fit = alignment.refine_to_reference(reference, points, current, predicted)
            if fit is not None and fit.reliable:
                # A second pass from the measured homography tightens the sub-pixel estimate.
                again = alignment.refine_to_reference(reference, points, current, fit.homography)
                if again is not None and again.reliable and again.inliers >= fit.inliers * 0.9:
                    fit = again
                current_h = fit.homography
                track.valid[frame] = True
                track.inliers[frame] = fit.inliers
            else:
                current_h = predicted
                track.valid[frame] = False
                track.inliers[frame] = 0 if fit is None else fit.inliers
            track.homographies[frame] = current_h
            track.corners[frame] = alignment.apply(current_h, quad)
            previous_frame = frame
            if progress:
                progress(frame)
            index += direction
    return track


def to_json(track: PlanarTrack, width: int, height: int, fps: float, plate: str | None = None) -> dict:
    frames = sorted(track.corners)
    return {
        "format": "retake-planar-track",
        "version": 1,
        "plate": plate,
        "width": width,
        "height": height,
        "fps": fps,
        "coordinates": "frame pixels, origin top-left, x right, y down, pixel centres at +0.5",
        "reference_frame": track.reference_frame,
        "quad": np.round(track.quad, 3).tolist(),
        "frames": [{"frame": f, "corners": np.round(track.corners[f], 3).tolist(),
                    "homography": np.round(track.homographies[f], 9).tolist(),
                    "reliable": bool(track.valid[f]), "inliers": int(track.inliers[f])} for f in frames],
    }


def to_nuke(track: PlanarTrack, height: int, plate: str | None = None) -> str:
    label = "planar track" + (f" of {os.path.basename(plate)}" if plate else "") + f", reference {track.reference_frame}"
    return nuke_export.join([nuke_export.corner_pin("RetakeCornerPin", track.corners, track.quad, height, label=label)])


def write(track: PlanarTrack, path: str, width: int, height: int, fps: float, plate: str | None = None) -> None:
    extension = os.path.splitext(path)[1].lower()
    if extension == ".json":
        text = json.dumps(to_json(track, width, height, fps, plate), indent=1)
    elif extension == ".nk":
        text = to_nuke(track, height, plate)
    else:
        raise ValueError(f"unknown planar track format {extension!r}")
    write_text_atomic(path, text)
