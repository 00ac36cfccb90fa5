"""Homographies between frames from tracked features: the shared core of the planar and
camera trackers.

Images are (H, W) uint8 grey (``grey`` makes them from (H, W, 3) uint8 sRGB);
points and homographies are in frame pixels (continuous, y down, pixel centres
at +0.5; OpenCV's feature and flow functions use pixel-index coordinates, so the
half-pixel shift is applied at that boundary).

``refine_to_reference`` measures each frame directly against the reference frame,
so errors do not add up over a long plate (drift): the current frame is first
warped into the reference's geometry with the predicted homography, the reference
features are then found in it by pyramidal Lucas-Kanade (sub-pixel), checked
forwards and backwards, and a RANSAC homography keeps only the features that agree
— those an occluder or a moving foreground covers do not.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_LK = dict(winSize=(21, 21), maxLevel=3, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 40, 0.01))


def grey(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 sRGB -> (H, W) uint8 grey (Rec.709 luma weights on the encoded values)."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def to_index(points: np.ndarray) -> np.ndarray:
    return (np.asarray(points, dtype=np.float64) - 0.5).astype(np.float32).reshape(-1, 1, 2)


def from_index(points: np.ndarray) -> np.ndarray:
    return points.reshape(-1, 2).astype(np.float64) + 0.5


def apply(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 2) points through a 3x3 homography."""
    p = np.hstack([np.asarray(points, dtype=np.float64).reshape(-1, 2), np.ones((len(points), 1))]) @ h.T
    return p[:, :2] / p[:, 2:3]


def _index_homography(h: np.ndarray) -> np.ndarray:
    """The same map in pixel-index coordinates (for cv2.warpPerspective)."""
    shift = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]], dtype=np.float64)
    unshift = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]], dtype=np.float64)
    return unshift @ h @ shift


def features(image: np.ndarray, mask: np.ndarray | None = None, count: int = 400, spacing: int = 7,
             cells: tuple[int, int] = (1, 1)) -> np.ndarray:
    """(N, 2) corner features (Shi-Tomasi) of a (H, W) uint8 grey image, inside ``mask`` (uint8, 255 = use).

    ``cells`` (columns, rows): pick features per cell of a grid, so that one very
    textured region (a face, a patterned shirt) cannot hold most of them.
    """
    height, width = image.shape
    columns, rows = cells
    per_cell = max(1, count // (columns * rows))
    found_all = []
    for r in range(rows):
        for c in range(columns):
            x0, x1 = width * c // columns, width * (c + 1) // columns
            y0, y1 = height * r // rows, height * (r + 1) // rows
            cell_mask = np.zeros_like(image) if mask is None else np.zeros_like(mask)
            cell_mask[y0:y1, x0:x1] = 255 if mask is None else mask[y0:y1, x0:x1]
            found = cv2.goodFeaturesToTrack(image, maxCorners=per_cell, qualityLevel=0.005, minDistance=spacing,
                                            mask=cell_mask, blockSize=7)
            if found is not None:
                found_all.append(found)
    if not found_all:
        return np.zeros((0, 2))
    found = np.concatenate(found_all).astype(np.float32)
    refined = cv2.cornerSubPix(image, found, (5, 5), (-1, -1),
                               (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
    return from_index(refined)


def _consensus(src: np.ndarray, dst: np.ndarray, threshold: float) -> tuple[np.ndarray | None, np.ndarray]:
    m, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=threshold,
                                          maxIters=2000, confidence=0.999)
    if m is None:
        return None, np.zeros(len(src), dtype=bool)
    return m, mask.reshape(-1).astype(bool)


def dominant(src: np.ndarray, dst: np.ndarray, threshold: float = 2.0, prior: np.ndarray | None = None) -> np.ndarray:
    """(N,) bool: the points that share one translate/rotate/scale motion (RANSAC).

    A homography is flexible enough to bend between two motions (the background and
    an actor); a similarity is not, so it picks one motion, and the homography is
    then fitted to its points only. With ``prior`` (a 3x3 guess of the motion, e.g.
    the previous frame's), the two largest motions are compared and the one closer
    to the guess wins unless it is much smaller: a large actor crossing the frame
    then does not take over the camera's motion for a few frames.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if len(src) < 6:
        return np.ones(len(src), dtype=bool)
    first, first_in = _consensus(src, dst, threshold)
    if first is None:
        return np.ones(len(src), dtype=bool)
    if prior is None:
        return first_in
    rest = ~first_in
    if rest.sum() < max(8, 0.3 * first_in.sum()):
        return first_in
    second, second_in_rest = _consensus(src[rest], dst[rest], threshold)
    if second is None or second_in_rest.sum() < max(8, 0.3 * first_in.sum()):
        return first_in
    second_in = np.zeros(len(src), dtype=bool)
    second_in[np.nonzero(rest)[0][second_in_rest]] = True

    def distance_to_prior(model: np.ndarray, where: np.ndarray) -> float:
        p = src[where]
        return float(np.linalg.norm(p @ model[:, :2].T + model[:, 2] - apply(prior, p), axis=1).mean())

    if distance_to_prior(second, second_in) < distance_to_prior(first, first_in):
        return second_in
    return first_in


def _track(a: np.ndarray, b: np.ndarray, points: np.ndarray, guess: np.ndarray | None = None,
           fb_limit: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Points of ``a`` found in ``b`` (LK, forwards-backwards checked): (N, 2) positions, (N,) bool ok."""
    if len(points) == 0:
        return np.zeros((0, 2)), np.zeros(0, dtype=bool)
    start = to_index(points)
    initial = to_index(guess if guess is not None else points)
    forward, status, _err = cv2.calcOpticalFlowPyrLK(a, b, start, initial.copy(),
                                                     flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **_LK)
    backward, status_back, _err = cv2.calcOpticalFlowPyrLK(b, a, forward, start.copy(),
                                                           flags=cv2.OPTFLOW_USE_INITIAL_FLOW, **_LK)
    fb = np.linalg.norm(backward.reshape(-1, 2) - start.reshape(-1, 2), axis=1)
    ok = (status.reshape(-1) == 1) & (status_back.reshape(-1) == 1) & (fb < fb_limit)
    return from_index(forward), ok


@dataclass
class Fit:
    """A homography with the evidence for it: ``inliers`` of ``tried`` features, residual RMS (px)."""

    homography: np.ndarray
    inliers: int
    tried: int
    rms: float
    src: np.ndarray | None = None  # (inliers, 2) the agreeing points, before ...
    dst: np.ndarray | None = None  # ... and after

    @property
    def reliable(self) -> bool:
        return self.inliers >= 12 and self.inliers >= 0.25 * max(self.tried, 1)


def fit_homography(src: np.ndarray, dst: np.ndarray, threshold: float = 1.0, *, model: str = "homography") -> Fit | None:
    """RANSAC then least squares on the inliers. ``model``: homography, affine or similarity."""
    if len(src) < 6:
        return None
    s = src.astype(np.float64)
    d = dst.astype(np.float64)
    if model == "homography":
        h, mask = cv2.findHomography(s, d, cv2.RANSAC, threshold, maxIters=4000, confidence=0.999)
        if h is None:
            return None
        inl = mask.reshape(-1).astype(bool)
        if inl.sum() >= 8:
            h, _ = cv2.findHomography(s[inl], d[inl], 0)
    else:
        estimate = cv2.estimateAffine2D if model == "affine" else cv2.estimateAffinePartial2D
        m, mask = estimate(s, d, method=cv2.RANSAC, ransacReprojThreshold=threshold, maxIters=4000, confidence=0.999,
                           refineIters=20)
        if m is None:
            return None
        h = np.vstack([m, [0.0, 0.0, 1.0]])
        inl = mask.reshape(-1).astype(bool)
    if h is None:
        return None
    residual = np.linalg.norm(apply(h, s[inl]) - d[inl], axis=1) if inl.any() else np.zeros(1)
    return Fit(h / h[2, 2], int(inl.sum()), len(src), float(np.sqrt(np.mean(residual ** 2))), s[inl], d[inl])


def simpler_if_as_good(fit: Fit, tolerance: float = 0.05) -> Fit:
    """The similarity through the same points when it explains them within ``tolerance`` px (RMS)
    of the homography: a homography fitted to points bunched in one part of the frame bends
    the rest of it (its perspective terms are poorly measured), a similarity does not."""
    if fit.src is None or len(fit.src) < 6:
        return fit
    m, _mask = cv2.estimateAffinePartial2D(fit.src, fit.dst, method=cv2.LMEDS)
    if m is None:
        return fit
    h = np.vstack([m, [0.0, 0.0, 1.0]])
    rms = float(np.sqrt(np.mean(np.sum((apply(h, fit.src) - fit.dst) ** 2, axis=1))))
    if rms <= fit.rms + tolerance:
        return Fit(h, fit.inliers, fit.tried, rms, fit.src, fit.dst)
    return fit


def frame_to_frame(previous: np.ndarray, current: np.ndarray, points: np.ndarray, threshold: float = 1.0,
                   model: str = "homography", prior: np.ndarray | None = None) -> Fit | None:
    """How ``points`` of the previous (H, W) uint8 grey frame moved into the current one
    (``prior``: a 3x3 guess, e.g. the previous step, to choose between two motions)."""
    moved, ok = _track(previous, current, points, fb_limit=1.0)
    if ok.sum() < 8:
        return None
    ok[ok] = dominant(points[ok], moved[ok], prior=prior)
    fit = fit_homography(points[ok], moved[ok], threshold, model=model)
    if fit is not None:
        fit.tried = len(points)
    return fit


def refine_to_reference(reference: np.ndarray, points: np.ndarray, current: np.ndarray, predicted: np.ndarray,
                        threshold: float = 1.0, model: str = "homography") -> Fit | None:
    """The reference -> current homography, measured against the reference itself.

    ``reference``/``current``: (H, W) uint8 grey frames; ``points``: (N, 2) reference
    features; ``predicted``: a 3x3 estimate of reference -> current (e.g. chained
    frame-to-frame motion). Returns None when too few features are found.
    """
    height, width = reference.shape
    inverse = np.linalg.inv(predicted)
    # The current frame in the reference's geometry: what is left is a small motion.
    rectified = cv2.warpPerspective(current, _index_homography(inverse), (width, height), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    found, ok = _track(reference, rectified, points)
    # Features whose neighbourhood fell outside the current frame are not evidence.
    margin = 12  # half the Lucas-Kanade window: a feature nearer the edge is only partly seen
    inside = (found[:, 0] > margin) & (found[:, 1] > margin) & (found[:, 0] < width - margin) & (found[:, 1] < height - margin)
    in_current = apply(predicted, found)
    ch, cw = current.shape
    inside &= ((in_current[:, 0] > margin) & (in_current[:, 1] > margin) & (in_current[:, 0] < cw - margin)
               & (in_current[:, 1] < ch - margin))
    ok &= inside
    candidates = int(inside.sum())
    if ok.sum() < 8:
        return None
    # In the rectified frame what the prediction got right barely moves; what moves
    # on its own (an occluder, the foreground) moves differently. A good prediction
    # (the usual case) is trusted to say which is which; a poor one leaves it to
    # the dominant motion.
    near = np.linalg.norm(found - points, axis=1) < 2.0
    if (ok & near).sum() >= 20:
        ok &= near
    else:
        ok[ok] = dominant(points[ok], found[ok], prior=np.eye(3))
    if ok.sum() < 8:
        return None
    fit = fit_homography(points[ok], in_current[ok], threshold, model=model)
    if fit is not None:
        fit.tried = candidates  # the features that could have been found (inside the frame)
    return fit
