"""Tracks drawn over a preview: what ``retake preview --overlay`` (and so the panels) show.

Reads the files ``retake track`` writes (JSON: ``retake-face-tracks``,
``retake-planar-track``, ``retake-camera-motion``) and draws one frame's worth of them
onto an 8-bit display image: each face's box, identity and landmarks (the key
landmarks larger), a planar track's quad, the camera's motion as a grid moved from
the reference frame. Colours are per identity so a switch shows at a glance.

The image is (h, W, 3) uint8 sRGB display code values, possibly smaller than the plate
(a thumbnail); coordinates in the files are plate pixels (pixel centres at +0.5), scaled
by (sx, sy) = preview size / plate size.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engine.errors import InputError

__all__ = ["load_tracks", "draw_tracks", "FORMATS"]

FORMATS = ("retake-face-tracks", "retake-planar-track", "retake-camera-motion")

# Eight identities, eight colours that stay apart on a busy plate (RGB).
_PALETTE = [(255, 214, 0), (0, 200, 255), (255, 80, 160), (120, 255, 90), (255, 140, 0), (180, 120, 255),
            (0, 255, 200), (255, 255, 255)]


def load_tracks(path: str) -> dict[str, Any]:
    """A ``retake track`` JSON file, checked for its format; InputError naming the file otherwise."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read the track file: {error}", path=path,
                         hint="give a .json file written by `retake track`") from None
    if not isinstance(data, dict) or data.get("format") not in FORMATS:
        raise InputError(f"not a Retake track file (format {data.get('format') if isinstance(data, dict) else None!r})",
                         path=path, hint="give a .json file written by `retake track faces|planar|camera`")
    return data


def _to_px(points: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Plate pixels (centres at +0.5) -> preview pixel indices, as int32 in 1/16 px (cv2 shift=4)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return np.round(np.stack([p[:, 0] * sx - 0.5, p[:, 1] * sy - 0.5], axis=1) * 16).astype(np.int32)


def _entry(data: dict[str, Any], frame: int) -> dict[str, Any] | None:
    return next((e for e in data.get("frames", []) if int(e.get("frame", -1)) == frame), None)


def draw_tracks(image: np.ndarray, data: dict[str, Any], frame: int, sx: float, sy: float) -> int:
    """Draw ``frame`` of a track file onto ``image`` in place; returns how many items were drawn."""
    entry = _entry(data, frame)
    if entry is None:
        return 0
    line = max(1, int(round(min(image.shape[:2]) / 300)))
    kind = data["format"]
    if kind == "retake-face-tracks":
        keys = set(int(i) for i in (data.get("key_landmarks") or {}).values())
        for face in entry.get("faces", []):
            colour = _PALETTE[(int(face["id"]) - 1) % len(_PALETTE)]
            x0, y0, x1, y1 = face["box"]
            box = _to_px(np.array([[x0, y0], [x1, y1]]), sx, sy)
            cv2.rectangle(image, tuple(box[0]), tuple(box[1]), colour, line, cv2.LINE_AA, shift=4)
            points = _to_px(np.asarray(face["landmarks"])[:, :2], sx, sy)
            for i, p in enumerate(points):
                radius = (2 * line if i in keys else max(1, line // 2)) * 16
                cv2.circle(image, (int(p[0]), int(p[1])), radius, colour, -1, cv2.LINE_AA, shift=4)
            cv2.putText(image, str(face["id"]), (int(box[0][0] // 16), max(0, int(box[0][1] // 16) - 3 * line)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4 * line, colour, line, cv2.LINE_AA)
        return len(entry.get("faces", []))
    if kind == "retake-planar-track":
        corners = _to_px(np.asarray(entry["corners"]), sx, sy)
        colour = _PALETTE[0] if entry.get("reliable", True) else (255, 60, 60)
        cv2.polylines(image, [corners.reshape(-1, 1, 2)], True, colour, line, cv2.LINE_AA, shift=4)
        return 1
    # camera motion: a grid fixed to the reference frame's background, moved with it
    h = np.asarray(entry["homography"], dtype=np.float64)
    width, height = float(data["width"]), float(data["height"])
    xs, ys = np.meshgrid(np.linspace(0.1, 0.9, 5) * width, np.linspace(0.1, 0.9, 4) * height)
    grid = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)], axis=1) @ h.T
    moved = _to_px(grid[:, :2] / grid[:, 2:3], sx, sy).reshape(4, 5, 2)
    colour = _PALETTE[1] if entry.get("reliable", True) else (255, 60, 60)
    for row in moved:
        cv2.polylines(image, [row.reshape(-1, 1, 2)], False, colour, line, cv2.LINE_AA, shift=4)
    for column in moved.transpose(1, 0, 2):
        cv2.polylines(image, [column.reshape(-1, 1, 2)], False, colour, line, cv2.LINE_AA, shift=4)
    return 1
