"""Motion saliency: where things move *relative to the camera*, per frame.

For a plate with no faces or people, the subject of a shot is what moves on its own: a car,
a ball, an animal. Per pair of neighbouring frames:

1. dense optical flow (OpenCV DIS on grey frames at up to ``MOTION_SIDE`` px: the subject's
   place needs a coarse flow, not a fine one, and DIS gives it in milliseconds);
2. the camera's own motion: a homography fitted to that flow by RANSAC over a grid of
   textured samples, so the background (most of the frame) decides it and the subject
   (a minority) is the outlier;
3. the residual flow (flow minus the camera's), per pixel, in px a frame.

A pixel of frame i is salient when its residual is above the threshold both towards
frame i + 1 and towards frame i - 1 (the smaller of the two counts): a pixel that moves
on its own does so in both directions, while the flow's own failures (a background
uncovered or covered by the subject, which has no match) mostly show in one only. The
first and last frames have one neighbour: there the pixel must move and land on a pixel
that moves back.

The subject of a frame is the residual-weighted centroid of its salient pixels and the
extent that holds nearly all of them (2 %-98 % quantiles); a frame where too little
moves (less than ``MIN_SHARE`` of it), or so much that the camera's motion cannot be told
from the subject's (more than ``MAX_SHARE``), has none.

What is approximated: the camera's motion is one homography a frame (a flat scene or a
camera turning about its lens), so a strong parallax (a near foreground on a dolly move)
shows as motion too; a brightness flicker can read as motion where the image is flat.

Frames in: (H, W, 3) uint8 sRGB (``engine.analysis.frames.display_rgb8``), all of one size.
Coordinates out: pixels of those frames, x right, y down, pixel centres at +0.5.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["MOTION_SIDE", "MovingSubject", "camera_homography", "residual_motion", "moving_subjects"]

MOTION_SIDE = 480      # the longest side the flow is measured at (px)
THRESHOLD = 0.75       # residual motion (px a frame at MOTION_SIDE) that counts as moving
MIN_SHARE = 0.001      # fewer salient pixels than this share of the frame: nothing moves
MAX_SHARE = 0.5        # more: the "background" is not the majority, the camera fit is not trusted
RELATIVE = 0.25        # a moving pixel's residual is also at least this share of the moving pixels' median
KEEP = 0.25            # moving regions of less than this share of the largest one's weight are dropped
GRID_STEP = 8          # px between the flow samples the camera's homography is fitted to


@dataclass(frozen=True)
class MovingSubject:
    """What moves on one frame: ``centre`` (x, y) and ``extent`` (half-width, half-height)
    in px of the frames given; ``share`` of the frame's pixels that move; ``speed`` the
    median residual motion of those pixels (px a frame, at the frames' size)."""

    centre: tuple[float, float]
    extent: tuple[float, float]
    share: float
    speed: float


def _grey(rgb8: np.ndarray, scale: float) -> np.ndarray:
    """(H, W, 3) uint8 sRGB -> (h, w) uint8 grey at ``scale``."""
    grey = cv2.cvtColor(np.ascontiguousarray(rgb8), cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        size = (max(8, round(grey.shape[1] * scale)), max(8, round(grey.shape[0] * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return grey


def _flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(h, w, 2) float32 DIS flow (x, y) from grey ``a`` to grey ``b``, pixel-index convention."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)   # fresh: no state between pairs
    return dis.calc(a, b, None)


def camera_homography(flow: np.ndarray, grey: np.ndarray) -> np.ndarray | None:
    """The homography (3x3, pixel-index coordinates) that best explains ``flow`` (h, w, 2) over
    the textured part of ``grey`` (h, w) uint8: the camera's own motion, or None (too few samples)."""
    h, w = grey.shape
    ys, xs = np.mgrid[GRID_STEP // 2:h:GRID_STEP, GRID_STEP // 2:w:GRID_STEP]
    # Flat regions carry no flow of their own (DIS fills them from around): sample where there
    # is texture, the strongest three quarters of the grid, so the fit rests on measured motion.
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    energy = cv2.GaussianBlur(gx * gx + gy * gy, (0, 0), 2.0)[ys, xs].ravel()
    keep = energy >= np.quantile(energy, 0.25)
    src = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)[keep]
    dst = src + flow[ys, xs].reshape(-1, 2).astype(np.float64)[keep]
    if len(src) < 12:
        return None
    homography, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 1.0, maxIters=2000, confidence=0.999)
    if homography is None or inliers is None or inliers.sum() < 12:
        return None
    inl = inliers.ravel().astype(bool)
    refined, _ = cv2.findHomography(src[inl], dst[inl], 0)   # least squares on the agreeing samples
    return refined if refined is not None else homography


def residual_motion(flow: np.ndarray, grey: np.ndarray) -> np.ndarray:
    """(h, w) float32: the length of ``flow`` (h, w, 2) minus the camera's motion (px a frame);
    infinite everywhere when the camera's motion could not be fitted."""
    homography = camera_homography(flow, grey)
    if homography is None:
        return np.full(grey.shape, np.inf, dtype=np.float32)
    h, w = grey.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    points = np.stack([xs, ys], axis=-1).reshape(-1, 1, 2)
    moved = cv2.perspectiveTransform(points, homography).reshape(h, w, 2)
    camera = moved - np.stack([xs, ys], axis=-1)
    return np.linalg.norm(flow - camera, axis=-1).astype(np.float32)


def _subject(residual: np.ndarray, scale: float) -> MovingSubject | None:
    """The moving subject of one frame from its (h, w) residual motion at ``scale`` of the frames."""
    salient = residual > THRESHOLD
    if not salient.any():
        return None
    # Relative to the subject's own speed too: the flow bleeds a fast subject's motion into the
    # flat picture around it (a sky) at a fraction of its speed; that fringe is not the subject.
    threshold = max(THRESHOLD, RELATIVE * float(np.median(residual[salient])))
    salient = (residual > threshold).astype(np.uint8)
    # An opening removes specks (a pixel of flow noise, a flickering highlight) and keeps shapes.
    salient = cv2.morphologyEx(salient, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, labels = cv2.connectedComponents(salient, connectivity=8)
    if count < 2:
        return None
    # The regions that move most lead; a small one far from them (a patch of flow error, a
    # leaf) would stretch the extent across the frame: only those of at least a quarter of the
    # largest one's weight count (a subject in pieces, an arm apart from the body, stays whole).
    capped = np.minimum(residual, 4.0 * threshold).astype(np.float64)   # a 50 px flow outlier must not lead alone
    mass = np.bincount(labels.ravel(), weights=capped.ravel(), minlength=count)[1:]
    kept = np.flatnonzero(mass >= KEEP * mass.max()) + 1
    mask = np.isin(labels, kept)
    share = float(mask.mean())
    if not MIN_SHARE <= share <= MAX_SHARE:
        return None
    ys, xs = np.nonzero(mask)
    weights = capped[ys, xs]
    px, py = xs + 0.5, ys + 0.5   # pixel centres
    cx, cy = float((weights * px).sum() / weights.sum()), float((weights * py).sum() / weights.sum())
    half = []
    for values, centre in ((px, cx), (py, cy)):
        lo, hi = np.quantile(values, 0.02), np.quantile(values, 0.98)
        half.append(max(centre - float(lo), float(hi) - centre, 0.5))
    speed = float(np.median(residual[ys, xs]))
    return MovingSubject((cx / scale, cy / scale), (half[0] / scale, half[1] / scale), share, speed / scale)


def moving_subjects(frames: Sequence[tuple[int, np.ndarray]], cancelled: Callable[[], bool] = lambda: False
                    ) -> dict[int, MovingSubject | None]:
    """What moves relative to the camera on each of ``frames`` ((frame, (H, W, 3) uint8 sRGB), in
    order, consecutive): {frame: MovingSubject, or None where nothing does}."""
    if not frames:
        return {}
    height, width = frames[0][1].shape[:2]
    scale = min(1.0, MOTION_SIDE / max(width, height))
    greys = [_grey(rgb8, scale) for _frame, rgb8 in frames]
    scale = greys[0].shape[1] / width   # the scale actually used (rounded sizes)
    forward: list[np.ndarray] = []    # forward[i]: residual of frame i towards i + 1
    backward: list[np.ndarray] = []   # backward[i]: residual of frame i + 1 towards i
    flows: list[tuple[np.ndarray, np.ndarray]] = []   # (i -> i + 1, i + 1 -> i)
    for i in range(len(frames) - 1):
        if cancelled():
            from engine.errors import CancelledError
            raise CancelledError("cancelled while measuring the plate's motion; nothing was written")
        a, b = greys[i], greys[i + 1]
        ab, ba = _flow(a, b), _flow(b, a)
        flows.append((ab, ba))
        forward.append(residual_motion(ab, a))
        backward.append(residual_motion(ba, b))
    found: dict[int, MovingSubject | None] = {}
    last = len(frames) - 1
    for i, (frame, _rgb8) in enumerate(frames):
        if last == 0:   # a single frame: nothing to compare it with
            found[frame] = None
            continue
        if 0 < i < last:
            residual = np.minimum(forward[i], backward[i - 1])
        elif i == 0:   # one neighbour: the pixel must also land on a moving pixel there
            residual = np.minimum(forward[0], _at(backward[0], flows[0][0]))
        else:
            residual = np.minimum(backward[last - 1], _at(forward[last - 1], flows[last - 1][1]))
        found[frame] = _subject(residual, scale) if np.isfinite(residual).all() else None
    return found


def _at(values: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """(h, w) ``values`` of the other frame, read where ``flow`` (h, w, 2) takes each pixel
    (bilinear; 0 outside the frame: what leaves it is not seen moving there)."""
    h, w = values.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    finite = np.where(np.isfinite(values), values, 0.0).astype(np.float32)
    out = cv2.remap(finite, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return np.where(np.isfinite(values).all(), out, np.inf).astype(np.float32)
