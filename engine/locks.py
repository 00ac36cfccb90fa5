"""Character locks: what of the source must survive a transformation (the functional core).

A lock compares the transformed frame R with the source frame S and keeps, inside a
region found by the analysis models, only the part of the edit that the lock allows.
The edit is the difference D = enc(R) - enc(S) in ACEScct code values
(``engine.encoding``), as in ``engine.synth``: a grade is a constant there, so a lock
never takes a look away, only the parts of the edit that move or reshape the picture.

* **structure lock** (``faces``, ``poses``): inside the region the edit keeps only its
  low frequencies, R' = S + blur(D, sigma), with sigma a fraction of the region's own
  scale (the face height, the body's size). The picture's structure there - where the
  eyes, mouth, brows and jaw are and how they move, where the limbs are - is then the
  source's own, frame by frame, while the colour and the look of the edit stay. This
  is what a landmark model measured on the result confirms (``tests/test_locks.py``).
* **silhouette lock** (``bodies``, and ``blocking`` at a coarse scale): in a band around
  the source's person silhouette, each side takes only the edit of its own side,
  spread from beyond the band by a normalised convolution. An edit that bled across
  the outline (a warped keyframe's smear, a painted halo, a widened body) is cut back
  to the source's outline; the inside of the body and the background away from it
  keep their edit untouched.

Outside its region a lock leaves the frame bit for bit as it was (``torch.where``), so
a lock changes the result in its region and nowhere else.

Shapes: images (B, 3, H, W) float32 scene-linear ACEScg; masks and weights
(B, 1, H, W) float32 in [0, 1]. Region masks are rasterised from analysis results
in frame pixels (x right, y down, pixel centres at +0.5, as ``engine.analysis``).
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from engine.encoding import acescct_decode, acescct_encode
from engine.filters import gaussian_blur
from engine.synth import normalised_conv

__all__ = ["structure_lock", "silhouette_lock", "face_regions", "limb_regions", "POSE_BONES",
           "FACE_DETAIL", "POSE_DETAIL"]

# sigma of the kept low frequencies, as a fraction of the face height: small enough that
# a grade or a skin tone survives, large enough that an eye or a mouth moved by a few
# pixels in the edit goes back to the source's.
FACE_DETAIL = 0.06
# the same for limbs, as a fraction of the torso length (shoulders to hips).
POSE_DETAIL = 0.08

# MediaPipe's 33-point skeleton: arms, torso, legs (hands and face are left to the face lock).
POSE_BONES: tuple[tuple[int, int], ...] = (
    (11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24),
    (23, 25), (25, 27), (24, 26), (26, 28), (27, 29), (29, 31), (28, 30), (30, 32),
    (15, 17), (15, 19), (16, 18), (16, 20), (0, 11), (0, 12),
)

_EPS = 1e-6


def structure_lock(source: torch.Tensor, result: torch.Tensor, weight: torch.Tensor, sigma: torch.Tensor | float
                   ) -> torch.Tensor:
    """Keep only the low frequencies of the edit where ``weight`` > 0.

    source, result: (B, 3, H, W) linear ACEScg; weight: (B, 1, H, W) in [0, 1];
    sigma: px of the kept low frequencies (a float). Returns (B, 3, H, W) linear ACEScg,
    equal to ``result`` wherever weight is 0.
    """
    s, r = acescct_encode(source), acescct_encode(result)
    edit = r - s
    low = gaussian_blur(edit, float(sigma))
    locked = acescct_decode(r + weight * (low - edit))
    return torch.where(weight > 0, locked, result)


def _erode(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary erosion of a (B, 1, H, W) {0, 1} mask by a square of side 2 * radius + 1.

    A square is separable: a row pass then a column pass costs O(radius), not O(radius^2).
    """
    if radius <= 0:
        return mask
    k = 2 * radius + 1
    grown = F.max_pool2d(1.0 - mask, (1, k), stride=1, padding=(0, radius))
    grown = F.max_pool2d(grown, (k, 1), stride=1, padding=(radius, 0))
    return 1.0 - grown


def silhouette_lock(source: torch.Tensor, result: torch.Tensor, person: torch.Tensor, band: float,
                    sides: str = "both") -> torch.Tensor:
    """Each side of the source's person outline takes only its own side's edit, within ``band`` px of it.

    source, result: (B, 3, H, W) linear ACEScg; person: (B, 1, H, W) soft person mask of
    the source (1 = person); band: px each side of the outline; sides: ``"both"``, or
    ``"outside"`` to hold only the background's side (the subject may change its shape
    inside the outline, never spill out of it). Returns (B, 3, H, W) linear ACEScg,
    equal to ``result`` farther than ``band`` from the outline.
    """
    radius = max(1, int(round(band)))
    inside = (person > 0.5).float()
    core_in = _erode(inside, radius)
    core_out = _erode(1.0 - inside, radius)
    near = (1.0 - core_in) * (1.0 - core_out)   # 1 within the band, 0 beyond
    if not bool(near.any()) or not bool(core_in.any()) or not bool(core_out.any()):
        return result
    # Work only where the band can reach: the band's box grown by what the fills see.
    sigma = max(1.0, band)
    rows = torch.nonzero(near.amax(dim=(0, 1, 3)) > 0).flatten()
    cols = torch.nonzero(near.amax(dim=(0, 1, 2)) > 0).flatten()
    reach = int(3 * sigma) + 2
    H, W = near.shape[-2:]
    ys = slice(max(0, int(rows[0]) - reach), min(H, int(rows[-1]) + 1 + reach))
    xs = slice(max(0, int(cols[0]) - reach), min(W, int(cols[-1]) + 1 + reach))
    s, r = acescct_encode(source[..., ys, xs]), acescct_encode(result[..., ys, xs])
    edit = r - s
    soft = person[..., ys, xs].clamp(0.0, 1.0)
    own_out = normalised_conv(edit, core_out[..., ys, xs], sigma)
    own_in = normalised_conv(edit, core_in[..., ys, xs], sigma) if sides == "both" else edit
    separated = soft * own_in + (1.0 - soft) * own_out
    # The band's own edge is feathered so the cut never shows as a line.
    band_part = near[..., ys, xs]
    ramp = gaussian_blur(band_part, max(0.5, band / 4.0)).clamp(0.0, 1.0) * band_part
    if sides != "both":
        ramp = ramp * (1.0 - soft)   # the subject's own pixels are never touched
    locked = acescct_decode(r + ramp * (separated - edit))
    out = result.clone()
    out[..., ys, xs] = torch.where(ramp > 0, locked, result[..., ys, xs])
    return out


def _fill(mask: np.ndarray, polygon: np.ndarray) -> None:
    # Sub-pixel vertices (shift=2: quarter pixels), pixel centres at +0.5.
    cv2.fillPoly(mask, [np.round((polygon - 0.5) * 4).astype(np.int32)], 1.0, lineType=cv2.LINE_AA, shift=2)


def _feathered(one: np.ndarray, feather: float) -> np.ndarray:
    """A {0, 1} (H, W) mask with a soft edge of ``feather`` px, exactly 0 beyond it."""
    reach = cv2.dilate(one, np.ones((3, 3), np.uint8), iterations=int(np.ceil(2 * feather))) > 0
    return (cv2.GaussianBlur(one, (0, 0), feather) * reach).astype(np.float32)


def face_regions(faces: Sequence[np.ndarray], width: int, height: int, grow: float = 0.08
                 ) -> list[tuple[np.ndarray, float]]:
    """Each face's region as a soft weight (H, W) float32 in [0, 1], with the face's height in px.

    faces: (468, 2|3) landmarks per face, frame pixels. The convex hull of each face's
    landmarks (forehead to chin, ear to ear) grown by ``grow`` of the face height, with a
    feathered edge of that size so the lock fades in rather than cutting a line.
    """
    regions = []
    for landmarks in faces:
        points = np.asarray(landmarks, dtype=np.float64)[:, :2]
        size = float(max(np.ptp(points[:, 1]), np.ptp(points[:, 0]), 1.0))
        hull = cv2.convexHull(points.astype(np.float32)).reshape(-1, 2).astype(np.float64)
        direction = hull - hull.mean(axis=0)
        length = np.linalg.norm(direction, axis=1, keepdims=True).clip(1e-6)
        one = np.zeros((height, width), dtype=np.float32)
        _fill(one, hull + direction / length * (grow * size))
        regions.append((_feathered(one, max(1.0, grow * size / 2.0)), size))
    return regions


def limb_regions(people: Sequence[tuple[np.ndarray, np.ndarray]], width: int, height: int,
                 min_visibility: float = 0.5) -> list[tuple[np.ndarray, float]]:
    """Each skeleton's limbs as a soft weight (H, W) float32 in [0, 1], with the torso length in px.

    people: (landmarks (33, 2|3) frame pixels, visibility (33,)) per person. Each visible
    bone of ``POSE_BONES`` becomes a capsule as wide as a third of the torso length.
    """
    regions = []
    for landmarks, visibility in people:
        points = np.asarray(landmarks, dtype=np.float64)[:, :2]
        torso = float(np.linalg.norm((points[11] + points[12]) / 2 - (points[23] + points[24]) / 2))
        torso = max(torso, float(np.linalg.norm(points[11] - points[12])), 8.0)
        thickness = max(2, int(round(torso / 3.0)))
        one = np.zeros((height, width), dtype=np.float32)
        for a, b in POSE_BONES:
            if visibility[a] < min_visibility or visibility[b] < min_visibility:
                continue
            pa, pb = np.round((points[[a, b]] - 0.5) * 4).astype(np.int32)
            cv2.line(one, (int(pa[0]), int(pa[1])), (int(pb[0]), int(pb[1])), 1.0, thickness, cv2.LINE_AA, shift=2)
        # One entry per person, in order, even when none of its bones is visible (then all 0).
        regions.append((_feathered(np.clip(one, 0.0, 1.0), max(1.0, torso / 12.0)), torso))
    return regions
