"""Extend frame (``reframe`` with ``extend`` on): a wider frame than the camera shot.

The frame keeps its full height and grows sideways to the new ratio. What lies outside
the source frame is taken from what the camera saw in other frames: the plate's camera
motion (``engine.analysis.camera``, per-frame homographies of the background) carries
each neighbouring frame into this frame's geometry, nearest frames first, and the first
one that covers a pixel gives it (a mosaic, as a matte painter would build one). What no
frame within ``reach`` saw is filled from around it (a normalised convolution in ACEScct,
coarse to fine), the same way on every frame, so it does not flicker more than the
mosaic around it.

What is approximated: the homographies hold for the background (distant or planar
scenery); moving people near the frame's edge are not carried into the extension.

Frames in: (H, W, C) float32 ACEScg; out: (H, W', C) with W' = H x aspect.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from engine.encoding import acescct_decode, acescct_encode
from engine.synth import normalised_conv
from engine.transforms import TransformContext

__all__ = ["ExtendTransform", "extended_size", "REACH"]

REACH = 24   # frames each side that may give an extended frame its content


def extended_size(aspect: float, width: int, height: int) -> tuple[int, int]:
    return max(width, int(round(height * aspect / 2.0)) * 2), height


class ExtendTransform:
    """``apply`` builds each wider frame from the plate's frames around it."""

    def __init__(self, context: TransformContext, homographies: dict[int, np.ndarray], size: tuple[int, int],
                 reach: int = REACH) -> None:
        self.context = context
        self.homographies = homographies   # reference -> frame, output (working) pixels
        self.size = size                   # the extended (width, height)
        self.reach = reach

    @property
    def output_size(self) -> tuple[int, int]:
        return self.size

    @classmethod
    def from_context(cls, context: TransformContext, aspect: float) -> "ExtendTransform":
        from engine.analysis.camera import track_camera
        from engine.transforms.homography import analysis_frames, scale_homography

        frames, scale = analysis_frames(context)
        first = context.frames[0]
        motion = track_camera(frames, first)
        homographies = {f: scale_homography(h, scale) for f, h in motion.homographies.items()}
        width, height = context.size
        return cls(context, homographies, extended_size(aspect, width, height))

    def _placed(self, h: np.ndarray) -> np.ndarray:
        """A homography into this frame's pixels, moved into the extended canvas."""
        width, height = self.context.size
        offset = (self.size[0] - width) / 2.0
        return np.array([[1.0, 0.0, offset], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ h

    def apply(self, frame: int, image: np.ndarray) -> np.ndarray:
        from engine.transforms.homography import _index

        out_w, out_h = self.size
        channels = image.shape[-1]
        canvas = np.zeros((out_h, out_w, channels), np.float32)
        filled = np.zeros((out_h, out_w), np.float32)
        first, last = self.context.frames
        order = sorted(range(max(first, frame - self.reach), min(last, frame + self.reach) + 1),
                       key=lambda g: (abs(g - frame), g))
        here = self.homographies[frame]
        for g in order:
            source = image if g == frame else self.context.source(g)
            # g's pixels -> frame's pixels: back to the reference, then on to this frame.
            m = _index(self._placed(here @ np.linalg.inv(self.homographies[g])))
            warped = cv2.warpPerspective(np.ascontiguousarray(source, np.float32), m, (out_w, out_h),
                                         flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            if warped.ndim == 2:
                warped = warped[..., None]
            cover = cv2.warpPerspective(np.ones(source.shape[:2], np.float32), m, (out_w, out_h),
                                        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            cover = cv2.erode(cover, np.ones((3, 3), np.uint8))   # no half-covered edge pixels
            take = (cover > 0.999) & (filled < 0.5)
            canvas[take] = warped[take]
            filled[take] = 1.0
            if filled.min() >= 0.5:
                break
        if filled.min() < 0.5:
            canvas[..., :3] = _fill_holes(canvas[..., :3], filled)
        return canvas


def _fill_holes(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(H, W, 3) ACEScg with the pixels where ``known`` is 0 filled from around them (ACEScct)."""
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    w = torch.from_numpy(np.ascontiguousarray(known))[None, None]
    code = acescct_encode(t)
    out = code * w
    have = w.clone()
    sigma = 2.0
    while bool((have < 0.999).any()) and sigma < 4 * max(image.shape[:2]):
        spread = normalised_conv(code, w, sigma)
        density = normalised_conv(w, w, sigma)   # > 0 where some known pixel is within reach
        reached = (density > 0.5) & (have < 0.5)
        out = torch.where(reached, spread, out)
        have = torch.where(reached, torch.ones_like(have), have)
        sigma *= 2.0
    return acescct_decode(out)[0].permute(1, 2, 0).numpy().astype(np.float32)
