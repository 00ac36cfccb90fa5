"""Rotated square crops of a frame for the models, and the way back to frame pixels.

A region of interest is MediaPipe's rotated rectangle: centre, size and a
rotation (radians, y down, so positive turns the crop's x axis clockwise on
screen). ``Crop.to_image`` maps model-input coordinates back to frame pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Roi:
    """A rotated rectangle in frame pixels (continuous coordinates, y down)."""

    cx: float
    cy: float
    width: float
    height: float
    rotation: float = 0.0

    def corners(self) -> np.ndarray:
        """(4, 2) float64 corners: top-left, top-right, bottom-right, bottom-left of the crop."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        half = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * [self.width / 2, self.height / 2]
        rot = np.array([[c, -s], [s, c]])
        return half @ rot.T + [self.cx, self.cy]


@dataclass(frozen=True)
class Crop:
    """A model input cut from a frame: ``pixels`` (S, S, 3) uint8 sRGB (or letterboxed (S, S, 3)),
    and ``matrix`` (2, 3), the affine map from model-input coordinates to frame pixels."""

    pixels: np.ndarray
    matrix: np.ndarray

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) model-input coordinates -> (N, 2) frame pixels (float64)."""
        points = np.asarray(points, dtype=np.float64)
        return points @ self.matrix[:, :2].T + self.matrix[:, 2]

    @property
    def scale(self) -> float:
        """Frame pixels per model-input pixel (the map is a similarity)."""
        return float(math.hypot(self.matrix[0, 0], self.matrix[1, 0]))


def _warp(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    # ``matrix`` maps continuous model coordinates to continuous frame
    # coordinates; OpenCV's inverse map works on pixel indices (centres at
    # integers), hence the half-pixel shifts on both sides.
    to_index = matrix.copy()
    to_index[:, 2] += matrix[:, :2] @ np.array([0.5, 0.5]) - 0.5
    return cv2.warpAffine(image, to_index, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def crop_roi(image: np.ndarray, roi: Roi, size: int) -> Crop:
    """(H, W, 3) uint8 sRGB frame -> a (size, size, 3) uint8 crop of ``roi`` (rotated, resampled bilinear)."""
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    sx, sy = roi.width / size, roi.height / size
    # model (u, v) -> frame: centre + R @ ((u, v) - size/2) * scale
    linear = np.array([[c * sx, -s * sy], [s * sx, c * sy]])
    offset = np.array([roi.cx, roi.cy]) - linear @ np.array([size / 2, size / 2])
    matrix = np.hstack([linear, offset[:, None]])
    # Work on the part of the frame the crop covers only (what lies outside the
    # frame is black either way).
    corners = roi.corners()
    height, width = image.shape[:2]
    x0 = int(np.clip(np.floor(corners[:, 0].min()) - 2, 0, width))
    y0 = int(np.clip(np.floor(corners[:, 1].min()) - 2, 0, height))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()) + 2, 0, width))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()) + 2, 0, height))
    if x1 <= x0 or y1 <= y0:
        return Crop(np.zeros((size, size, 3), dtype=np.uint8), matrix)
    part = image[y0:y1, x0:x1]
    local = matrix.copy()
    local[:, 2] -= [x0, y0]
    factor = max(sx, sy) / 1.5
    if factor > 1.0:
        # Area-average before a strong minification so that fine texture does not alias.
        ph, pw = part.shape[:2]
        small = cv2.resize(part, (max(1, round(pw / factor)), max(1, round(ph / factor))), interpolation=cv2.INTER_AREA)
        local = np.diag([small.shape[1] / pw, small.shape[0] / ph]) @ local
        part = small
    return Crop(_warp(part, local, (size, size)), matrix)


def letterbox(image: np.ndarray, x0: float, y0: float, x1: float, y1: float, size: int) -> Crop:
    """The frame region (x0, y0)-(x1, y1) fitted into a (size, size, 3) uint8 input, aspect kept,
    centred, black around it (MediaPipe's FIT scale mode)."""
    scale = max(x1 - x0, y1 - y0) / size
    roi = Roi((x0 + x1) / 2, (y0 + y1) / 2, size * scale, size * scale, 0.0)
    crop = crop_roi(image, roi, size)
    # Keep only the region itself: what lies outside it (other tiles) is black,
    # as in MediaPipe's letterbox.
    inside = np.zeros((size, size), dtype=bool)
    u0 = int(round((x0 - (roi.cx - roi.width / 2)) / scale))
    v0 = int(round((y0 - (roi.cy - roi.height / 2)) / scale))
    inside[max(v0, 0):size - max(v0, 0), max(u0, 0):size - max(u0, 0)] = True
    pixels = crop.pixels.copy()
    pixels[~inside] = 0
    return Crop(pixels, crop.matrix)
