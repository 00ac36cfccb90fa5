"""Decoding MediaPipe's single-shot detectors (BlazeFace full range, BlazePose detector).

Both models output, per anchor, a box (centre x, centre y, width, height) and
keypoints relative to the anchor, plus one score logit. The anchor layouts are
MediaPipe's ``SsdAnchorsCalculator`` with fixed-size anchors; the option values
are those of MediaPipe's ``face_detection_full_range.pbtxt`` and
``pose_detection_cpu.pbtxt`` (the anchor counts, 2304 and 2254, are checked
against the model's output shape when a detector is built).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AnchorOptions:
    input_size: int
    strides: tuple[int, ...]
    # Anchors per cell for each stride: 1 for the face model (one layer, no
    # interpolated anchor), 2 per layer for the pose model (aspect ratio 1.0
    # plus the interpolated one), with consecutive layers of the same stride
    # sharing one grid.
    anchors_per_layer: int


FACE_FULL_RANGE = AnchorOptions(input_size=192, strides=(4,), anchors_per_layer=1)
POSE_DETECTOR = AnchorOptions(input_size=224, strides=(8, 16, 32, 32, 32), anchors_per_layer=2)


def anchor_centres(options: AnchorOptions) -> np.ndarray:
    """(N, 2) float32 anchor centres, normalised 0..1 over the model input (x, y)."""
    centres: list[np.ndarray] = []
    layer = 0
    while layer < len(options.strides):
        stride = options.strides[layer]
        repeats = 0
        while layer < len(options.strides) and options.strides[layer] == stride:
            repeats += options.anchors_per_layer
            layer += 1
        cells = int(np.ceil(options.input_size / stride))
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, repeats, axis=0))
    return np.concatenate(centres).astype(np.float32)


@dataclass
class RawDetection:
    """One detection in model-input pixels: ``box`` (x0, y0, x1, y1), ``keypoints`` (K, 2), ``score`` 0..1."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, input_size: int,
           num_keypoints: int, min_score: float) -> list[RawDetection]:
    """Turn the model's (N, 4 + 2K) regressors and (N, 1) logits into detections above ``min_score``.

    Coordinates come back in model-input pixels (0..input_size, continuous).
    Scores are the sigmoid of the logit clipped to +-100 (MediaPipe's options).
    """
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores.reshape(-1).astype(np.float64), -100.0, 100.0)))
    keep = np.nonzero(scores >= min_score)[0]
    found: list[RawDetection] = []
    for index in keep:
        values = raw_boxes[index]
        ax, ay = anchors[index] * input_size
        cx, cy = values[0] + ax, values[1] + ay
        w, h = values[2], values[3]
        points = values[4:4 + 2 * num_keypoints].reshape(num_keypoints, 2) + np.array([ax, ay], dtype=np.float32)
        found.append(RawDetection(np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dtype=np.float64),
                                  points.astype(np.float64), float(scores[index])))
    return found


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def weighted_nms(detections: list[RawDetection], threshold: float = 0.3) -> list[RawDetection]:
    """MediaPipe's weighted non-maximum suppression: overlapping detections (IoU > threshold)
    are averaged, weighted by score, into the best one; its score is kept."""
    remaining = sorted(detections, key=lambda d: d.score, reverse=True)
    kept: list[RawDetection] = []
    while remaining:
        best = remaining[0]
        group = [d for d in remaining if iou(best.box, d.box) > threshold]
        rest = [d for d in remaining if iou(best.box, d.box) <= threshold]
        weights = np.array([d.score for d in group])
        total = weights.sum()
        box = sum(w * d.box for w, d in zip(weights, group)) / total
        points = sum(w * d.keypoints for w, d in zip(weights, group)) / total
        kept.append(RawDetection(box, points, best.score))
        remaining = rest
    return kept
