"""Extend frame (``reframe`` with ``extend`` on): a wider frame than the camera shot.

The frame keeps its full height and grows sideways to the new ratio. What lies outside
the source frame is taken from what the camera saw in other frames: the plate's camera
motion (``engine.analysis.camera``, per-frame homographies of the background) carries
each neighbouring frame into this frame's geometry, nearest frames first, and the first
one that covers a pixel gives it (a mosaic, as a matte painter would build one). What no
frame within ``reach`` saw is filled from around it (push-pull in ACEScct: smooth colour,
no texture), the same way on every frame, so it does not flicker more than the mosaic
around it.

What is approximated: the homographies hold for the background (distant or planar
scenery); moving people near the frame's edge are not carried into the extension.

Frames in: (H, W, C) float32 ACEScg; out: (H, W', C) with W' = H x aspect.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from engine.encoding import acescct_decode, acescct_encode
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
        from engine.transforms.homography import analysis_frames, scale_homography, shared_analysis

        first = context.frames[0]

        def track() -> dict[int, np.ndarray]:
            frames, scale = analysis_frames(context)
            motion = track_camera(frames, first)
            return {f: scale_homography(h, scale) for f, h in motion.homographies.items()}

        homographies = shared_analysis(context, ("camera", first), track)
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
            # no edge pixel that the bicubic kernel (2 px) mixed with the black outside
            cover = cv2.erode(cover, np.ones((5, 5), np.uint8))
            take = (cover > 0.999) & (filled < 0.5)
            canvas[take] = warped[take]
            filled[take] = 1.0
            if filled.min() >= 0.5:
                break
        if filled.min() < 0.5:
            canvas[..., :3] = _fill_holes(canvas[..., :3], filled)
        return canvas


def _fill_holes(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(H, W, 3) ACEScg with the pixels where ``known`` is 0 filled from around them, in ACEScct.

    Push-pull: the known pixels are averaged down a pyramid until every cell has some, then
    each level fills its holes from the smoother level below it, interpolated: a hole gets
    the colours around it, smoothly, with no bands where one scale hands over to the next.
    """
    import torch.nn.functional as F

    code = acescct_encode(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None])
    weight = torch.from_numpy(np.ascontiguousarray(known, dtype=np.float32))[None, None]
    levels = [(code * weight, weight)]
    while bool((levels[-1][1] <= 0).any()) and min(levels[-1][1].shape[-2:]) > 1:
        num, den = levels[-1]
        levels.append((F.avg_pool2d(num, 2, ceil_mode=True), F.avg_pool2d(den, 2, ceil_mode=True)))
    num, den = levels[-1]
    filled = num / den.clamp_min(1e-6)
    for num, den in reversed(levels[:-1]):
        up = F.interpolate(filled, size=num.shape[-2:], mode="bilinear", align_corners=False)
        here = num / den.clamp_min(1e-6)
        share = den.clamp(0.0, 1.0)
        filled = share * here + (1.0 - share) * up
    return acescct_decode(filled)[0].permute(1, 2, 0).numpy().astype(np.float32)
