"""``motion_transfer``: the movement of the take carried onto another picture.

A new character, creature or object, painted or rendered in place on the plate's
``reference`` frame (``target``, a still the size and aspect of the plate), moves as
the take moved: every frame is the target carried along the plate's dense optical flow
from the reference frame (the same chained, occlusion-checked flow as ``propagate``,
``controls.motion`` setting how smooth a motion field it follows), sampled sharply in
ACEScct. Where the take's content cannot be followed (it was hidden, or outside the
reference frame), the target is carried all the same: there is no other picture to take.

``mode`` ``face``: a portrait driven by an actor's performance. The actor's face (the
largest in the take) is measured on every frame (468 landmarks); its movement since the
reference frame, mapped onto the portrait's own face by the similarity between the two
faces, moves the portrait's landmarks, and the picture around them follows a smooth
landmark-driven warp (a Gaussian-weighted field, fading out beyond the face). Where the
actor's face is not found on a frame the portrait holds its last pose.

``mode`` ``body``: a character driven by the actor's pose (``engine.transforms.body_drive``).
The actor (the take's largest, most present person) and the target's character are measured
with BlazePose (33 landmarks); the actor's landmarks are steadied over time, each bone's move
since the reference frame (torso, head, arms, legs) is measured from them and then checked
on the actor's own pixels (optical flow from the frame to the reference warped by the pose),
given to the character's skeleton joint by joint, and the target follows by linear-blend
skinning, sampled sharply in ACEScct, laid through its person mask over the target's still
background. Where the actor is not found on a frame the character holds its last pose.

What is approximated: the dense flow carries shapes as the take's surfaces move; the
face mode moves the portrait's pixels (it does not paint a mouth's inside that the
portrait never showed). The body mode moves the character's pixels as 2D bones: a turn
in depth is a stretch, nothing hidden on the target is painted, and the ground the
character leaves is a smooth fill. MediaPipe's pose landmarks alone are too unsteady to
drive a picture by (earlier, up to 50 px between two renders of a synthetic moving figure;
on the astronaut photograph moved by a known similarity, steadied, still 8 px median and
24 px at worst on the shoulders and arms: they drift with the framing); checked on the
pixels the bones land within 0.5 px there, the output within 0.6 px of the truth (a rigid
move; a synthetic forearm's turn, 8 degrees off by its landmarks, within 0.5 px). Between
two different bodies the mapping is as good as their landmarks agree (10 % on the scale
for two framings of the same person).

Frames in and out: (H, W, C) float32 scene-linear ACEScg; alpha untouched.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from engine.encoding import acescct_decode, acescct_encode
from engine.flow import warp_sharp
from engine.job import Job, Keyframe
from engine.filters import gaussian_blur
from engine.transforms import TransformContext
from engine.transforms.homography import check_frame
from engine.transforms.propagate import PropagateTransform

if TYPE_CHECKING:
    from engine.transforms.body_drive import BodyDrive

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
        transform = cls(keyed, context, flow_method=params.get("flow", "torch"))
        transform.face = FaceDrive.from_context(transform, context, reference) if params.get("mode") == "face" else None
        if params.get("mode") == "body":
            from engine.transforms.body_drive import BodyDrive
            transform.body = BodyDrive.from_context(transform, context, reference)
        return transform

    face: "FaceDrive | None" = None
    body: "BodyDrive | None" = None

    def apply(self, frame: int, image: np.ndarray) -> np.ndarray:
        drive = self.face if self.face is not None else self.body
        if drive is not None:
            out = np.array(image, dtype=np.float32, copy=True)
            out[..., :3] = drive.apply(frame, image)
            return out
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


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The (2, 2) rotation-and-scale taking ``src`` (N, 2) about its centroid onto ``dst`` about its own."""
    a, b = src - src.mean(axis=0), dst - dst.mean(axis=0)
    u, sig, vt = np.linalg.svd(b.T @ a)
    rotation = u @ vt
    if np.linalg.det(rotation) < 0:
        u[:, -1] *= -1
        rotation = u @ vt
    scale = sig.sum() / max((a ** 2).sum(), 1e-9)
    return scale * rotation


def driven_field(points: np.ndarray, moved: np.ndarray, width: int, height: int, sigma: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel (map_x, map_y) for ``cv2.remap``: the picture whose landmarks are ``points`` redrawn
    with them at ``moved`` (both (N, 2) frame pixels, centres at +0.5). The displacement is the
    Gaussian-weighted mean of the landmarks' own (sigma px), fading to none beyond about two sigma."""
    import cv2

    step = max(1, int(sigma // 3))   # the field is smooth: solve it on a coarse grid, then resize
    gw, gh = (width + step - 1) // step, (height + step - 1) // step
    gx, gy = np.meshgrid((np.arange(gw) + 0.5) * step, (np.arange(gh) + 0.5) * step)
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    shift = points - moved                       # from where a landmark is now to where it was
    total = np.zeros((len(grid), 2))
    weight = np.zeros(len(grid))
    for start in range(0, len(moved), 64):
        q = moved[start:start + 64]
        k = np.exp(-((grid[:, None, :] - q[None]) ** 2).sum(-1) / (2 * sigma ** 2))
        total += k @ shift[start:start + 64]
        weight += k.sum(axis=1)
    field = (total / (weight + np.exp(-2.0))[:, None]).reshape(gh, gw, 2).astype(np.float32)
    field = cv2.resize(field, (width, height), interpolation=cv2.INTER_LINEAR)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs + field[..., 0], ys + field[..., 1]


class FaceDrive:
    """The portrait ``target`` (H, W, 3) ACEScg driven by the take's leading face."""

    def __init__(self, target: np.ndarray, portrait: np.ndarray, actor: dict[int, np.ndarray], reference: int
                 ) -> None:
        self.target = target
        self.portrait = portrait            # (468, 2) the portrait's landmarks
        self.actor = actor                  # frame -> (468, 2) the actor's landmarks
        self.reference = reference
        self.mapping = _similarity(actor[reference], portrait)
        self.sigma = 0.12 * float(np.ptp(portrait[:, 1]))

    @classmethod
    def from_context(cls, transform: PropagateTransform, context: TransformContext, reference: int) -> "FaceDrive":
        from engine.analysis.faces import FaceDetector, FaceLandmarker, detect_faces
        from engine.analysis.frames import display_rgb8
        from engine.errors import JobError

        detector, landmarker = FaceDetector(), FaceLandmarker()

        def leading(working: np.ndarray) -> np.ndarray | None:
            faces = detect_faces(display_rgb8(context.colour, working), detector, landmarker)
            if not faces:
                return None
            best = max(faces, key=lambda f: float(f.box[3] - f.box[1]))
            return best.landmarks[:, :2].astype(np.float64)

        target = transform._key(0)[0][0].permute(1, 2, 0).cpu().numpy()
        portrait = leading(target)
        if portrait is None:
            raise JobError("no face found in the motion_transfer target", path="$.transform.target",
                           hint="the face mode needs a portrait: a face the detector can find, as large as the actor's")
        first, last = context.frames
        actor: dict[int, np.ndarray] = {}
        last_seen = None
        for frame in range(first, last + 1):
            found = leading(context.source(frame))
            if found is not None:
                last_seen = found
            if last_seen is not None:
                actor[frame] = last_seen
        if reference not in actor or leading(context.source(reference)) is None:
            raise JobError(f"no face found on the reference frame {reference} of the take",
                           path="$.transform.reference", hint="pick a frame where the actor's face is clear")
        for frame in range(first, last + 1):   # frames before the first sighting hold the reference pose
            actor.setdefault(frame, actor[reference])
        return cls(target, portrait, actor, reference)

    def actor_motion(self, frame: int) -> np.ndarray:
        """(N, 2) how each actor landmark moved since the reference frame, in the actor's pixels:
        a similarity fitted robustly to all of them (a landmark the model misplaced on this frame,
        far from where the others put it, drops out and follows the others), plus each kept
        landmark's own move beyond it (the expression)."""
        ref, now = self.actor[self.reference], self.actor[frame]
        keep = np.ones(len(ref), dtype=bool)
        for _ in range(3):
            linear = _similarity(ref[keep], now[keep])
            shift = now[keep].mean(axis=0) - ref[keep].mean(axis=0) @ linear.T
            predicted = ref @ linear.T + shift
            residual = np.linalg.norm(now - predicted, axis=1)
            limit = max(3.0 * float(np.median(residual[keep])), 0.02 * float(np.ptp(ref[:, 1])), 1.0)
            keep = residual <= limit
            if keep.sum() < 3:
                keep = np.ones(len(ref), dtype=bool)
                break
        return predicted + np.where(keep[:, None], now - predicted, 0.0) - ref

    def apply(self, frame: int, image: np.ndarray) -> np.ndarray:
        import cv2

        height, width = image.shape[:2]
        moved = self.portrait + self.actor_motion(frame) @ self.mapping.T
        map_x, map_y = driven_field(self.portrait, moved, width, height, self.sigma)
        return cv2.remap(np.ascontiguousarray(self.target, dtype=np.float32), map_x - 0.0, map_y - 0.0,
                         cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
