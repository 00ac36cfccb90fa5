"""``motion_transfer``: the movement of the take carried onto another picture.

A new character, creature or object, painted or rendered in place on the plate's
``reference`` frame (``target``, a still the size and aspect of the plate), moves as
the take moved: every frame is the target carried along the plate's dense optical flow
from the reference frame (the same chained, occlusion-checked flow as ``propagate``,
``controls.motion`` setting how smooth a motion field it follows), sampled sharply in
ACEScct. Where the take's content cannot be followed (it was hidden, or outside the
reference frame), the target is carried all the same: there is no other picture to take.

What is approximated: the dense flow carries shapes as the take's surfaces move; a
portrait driven by an actor's face landmarks or a body by its pose is not yet a mode.

Frames in and out: (H, W, C) float32 scene-linear ACEScg; alpha untouched.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from engine.encoding import acescct_decode, acescct_encode
from engine.flow import warp_sharp
from engine.job import Job, Keyframe
from engine.synth import gaussian_blur
from engine.transforms import TransformContext
from engine.transforms.homography import check_frame
from engine.transforms.propagate import PropagateTransform

__all__ = ["MotionTransferTransform"]


class MotionTransferTransform(PropagateTransform):
    """The target as the one keyframe at the reference frame, carried by its chain alone."""

    @classmethod
    def from_job(cls, job: Job, context: TransformContext) -> "MotionTransferTransform":
        from engine.keyframes import check_keyframes

        params = job.transform.params
        reference = int(params["reference"])
        check_frame("reference", reference, context)
        keyed = replace(job, keyframes=(Keyframe(frame=reference, image=params["target"]),))
        check_keyframes(keyed, context.colour, context.size, context.device)
        return cls(keyed, context, flow_method=params.get("flow", "torch"))

    def apply(self, frame: int, image: np.ndarray) -> np.ndarray:
        target, _source = self._key(0)
        out = np.array(image, dtype=np.float32, copy=True)
        if frame == self.key_frames[0]:
            moved = target
        else:
            chain = self._chain(0, frame)
            with torch.no_grad():
                flow = gaussian_blur(chain.flow, self.params.flow_sigma)
                moved = acescct_decode(warp_sharp(acescct_encode(target), flow))
        out[..., :3] = moved[0].permute(1, 2, 0).cpu().numpy()
        return out
