"""``camera_transfer``: the plate's camera move given to another picture.

A matte painting, a CG still or a photograph (``target``) gets the dolly, push-in,
pan or roll of a live-action take: the plate's background motion is tracked
(``engine.analysis.camera``: per-frame homographies from the ``reference`` frame,
robust to actors crossing it), and on every frame the target is moved by that
frame's homography, with the take's motion blur (``shutter``: fraction of a frame,
sampled along the homography path between neighbouring frames).

The target stands for the reference frame. One of the output's size is placed as it
is; a larger one (an overscan painting) is centred on the frame at its own scale, so
a camera move reveals what lies outside the frame. The output keeps the plate's
frames, length and fps, and is RGBA: premultiplied, its alpha the target's coverage
(0 where the target does not reach), ready to go over another plate.

Frames in and out: (H, W, C) float32 scene-linear ACEScg.
"""
from __future__ import annotations

import numpy as np

from engine.job import Job
from engine.transforms import TransformContext
from engine.transforms.homography import analysis_frames, blurred_warp, check_frame, interpolate, read_picture, \
    scale_homography, shared_analysis

__all__ = ["CameraTransferTransform"]


class CameraTransferTransform:
    """``apply`` works on (H, W, C) float32 ACEScg; the plate's pixels only drive the tracking."""

    def __init__(self, target: np.ndarray, homographies: dict[int, np.ndarray], size: tuple[int, int],
                 shutter: float) -> None:
        self.target = target
        self.size = size
        self.shutter = shutter
        width, height = size
        th, tw = target.shape[:2]
        # Target pixels -> reference-frame pixels: centred, at the target's own scale.
        place = np.array([[1.0, 0.0, (width - tw) / 2.0], [0.0, 1.0, (height - th) / 2.0], [0.0, 0.0, 1.0]])
        self.paths = {f: h @ place for f, h in homographies.items()}

    @classmethod
    def from_job(cls, job: Job, context: TransformContext) -> "CameraTransferTransform":
        from engine.analysis.camera import track_camera

        params = job.transform.params
        reference = int(params["reference"])
        check_frame("reference", reference, context)
        name = "target" if "target" in params else "image"   # environment calls its picture "image"
        target, _alpha = read_picture(params[name], context.colour, name)
        def track() -> dict[int, np.ndarray]:
            frames, scale = analysis_frames(context)
            motion = track_camera(frames, reference)
            return {f: scale_homography(h, scale) for f, h in motion.homographies.items()}

        homographies = shared_analysis(context, ("camera", reference), track)
        return cls(target, homographies, context.size, float(params["shutter"]))

    def _at(self, frame: int, t: float) -> np.ndarray:
        current = self.paths[frame]
        previous = self.paths.get(frame - 1, 2 * current - self.paths.get(frame + 1, current))
        following = self.paths.get(frame + 1, 2 * current - self.paths.get(frame - 1, current))
        return interpolate(previous, current, following, t)

    def apply(self, frame: int, image: np.ndarray) -> np.ndarray:
        picture, coverage = blurred_warp(self.target, lambda t: self._at(frame, t), self.size, self.shutter)
        out = np.zeros(image.shape[:2] + (4,), dtype=np.float32)   # premultiplied RGBA, whatever the plate has
        out[..., :3] = picture[..., :3] * coverage[..., None]
        out[..., 3] = coverage
        return out
