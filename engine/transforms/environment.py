"""``environment``: a new setting behind the people of the take (replace background).

The new environment (``image``: a still, a matte painting, a photograph of another
place) stands for the ``reference`` frame and moves with the plate's camera exactly as
``camera_transfer`` moves it (the background's motion, tracked past the people); the
take's people are kept in front of it through their soft person mask
(``engine.analysis.masks``, MediaPipe selfie segmentation on each frame's source).

What is approximated: only people are kept (the segmentation model knows no other
subject); the edge is the model's soft mask, with no light wrap or spill suppression;
the environment is flat (a homography moves it, so a strong parallax shows). Whether
the plate has people at all is the pose detector's word, asked once for the plate
(``engine.analysis.pose.anyone_in``): the segmentation model assumes someone is there and
on a landscape calls the ground a person, so on a plate with nobody the whole frame is
the new environment.

Frames in and out: (H, W, C) float32 scene-linear ACEScg; alpha is left untouched.
"""
from __future__ import annotations

import numpy as np

from engine.colour import Colour
from engine.job import Job
from engine.transforms import TransformContext
from engine.transforms.camera_transfer import CameraTransferTransform

__all__ = ["EnvironmentTransform"]


class EnvironmentTransform:
    """``apply`` works on (H, W, C) float32 ACEScg."""

    def __init__(self, background: CameraTransferTransform, colour: Colour, segmenter: object | None) -> None:
        self.background = background
        self.colour = colour
        self.segmenter = segmenter

    @classmethod
    def from_job(cls, job: Job, context: TransformContext) -> "EnvironmentTransform":
        from engine.analysis.masks import PersonSegmenter

        from engine.analysis.pose import anyone_in
        from engine.transforms.homography import analysis_frames

        segmenter = PersonSegmenter()   # loaded first: a missing model is said before the tracking runs
        background = CameraTransferTransform.from_job(job, context)
        frames, _scale = analysis_frames(context)
        return cls(background, context.colour, segmenter if anyone_in(frames, context.cancelled) else None)

    def person(self, image: np.ndarray) -> np.ndarray:
        """(H, W) float32 0..1: the people of this (H, W, C) ACEScg source frame (0 on a plate with nobody)."""
        from engine.analysis.frames import display_rgb8

        if self.segmenter is None:
            return np.zeros(image.shape[:2], dtype=np.float32)
        probability = self.segmenter.raw_mask(display_rgb8(self.colour, image))  # type: ignore[attr-defined]
        # A probability is not a matte: solid where the model is sure (>= 0.75), clear where it
        # is sure of the opposite (<= 0.25), soft only across its uncertain edge.
        return np.clip((probability - 0.25) / 0.5, 0.0, 1.0).astype(np.float32)

    def apply(self, frame: int, image: np.ndarray) -> np.ndarray:
        behind = self.background.apply(frame, image[..., :3])[..., :3]
        keep = self.person(image)[..., None]
        out = np.array(image, dtype=np.float32, copy=True)
        out[..., :3] = image[..., :3] * keep + behind[..., :3] * (1.0 - keep)
        return out
