"""Transformations: each turns a working-space frame into its directed version.

A transformation is built once per job (``build_transform``) and then applied
frame by frame, in any order (a farm chunk starts anywhere), so ``apply`` must
depend only on the frame number and the source pixels it is given.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from engine.colour import Colour
from engine.errors import JobError
from engine.io.header import PlateInfo
from engine.job import Job


@dataclass(frozen=True)
class TransformContext:
    """What a transformation may use besides the job.

    ``source(frame)`` returns any frame of the plate as the pipeline sees it:
    (H, W, C) float32 scene-linear working space (ACEScg) at the output
    resolution, after the missing-frame and NaN/Inf policies. Transforms that
    look at neighbouring frames (propagation) read them through it; the
    pipeline keeps a few recent frames so sequential access is cheap.
    ``size`` is the output (width, height); ``frames`` the plate's (first, last).
    ``cancelled()`` is true once the user or host asked to stop: work that can run
    longer than a frame (training, long chains) checks it and raises CancelledError.
    """

    colour: Colour
    plate: PlateInfo
    device: str
    source: Callable[[int], np.ndarray]
    size: tuple[int, int]
    frames: tuple[int, int]
    cancelled: Callable[[], bool] = lambda: False


class FrameTransform(Protocol):
    def apply(self, frame: int, image: np.ndarray) -> np.ndarray:
        """(H, W, C) float32 scene-linear working space (ACEScg) -> the same shape and space.

        The array returned is the caller's: the transform never changes it afterwards (it is
        written on another thread while the next frame is made, ``engine.io.write_behind``)."""
        ...


def _build_grade(job: Job, context: TransformContext) -> FrameTransform:
    from engine.transforms.grade import GradeTransform

    return GradeTransform.from_job(job, context.colour)


def _build_propagate(job: Job, context: TransformContext) -> FrameTransform:
    from engine.transforms.propagate import PropagateTransform

    return PropagateTransform.from_job(job, context)


# Transformations that change colour only: the source's structure survives them everywhere,
# so the pipeline's lock stage (engine.lock_stage) has nothing to hold and is skipped.
STRUCTURE_KEEPING = frozenset({"grade"})
# Transformations whose output is another picture (the plate only drives them): locks, which
# hold the plate's people, do not apply to them either.
NOT_THE_PLATE = frozenset({"camera_transfer", "reframe", "motion_transfer"})
# Transformations driven by keyframe images: keyframes with only a prompt are generated for them.
KEYFRAME_DRIVEN = frozenset({"propagate", "character", "vfx"})
# Transformations whose output has an alpha channel of their own, whatever the plate has.
MAKES_ALPHA = frozenset({"vfx", "camera_transfer"})


def output_size(job: Job, width: int, height: int) -> tuple[int, int]:
    """The size of the frames ``job``'s transformation makes from ``width`` x ``height`` working
    frames: the same, except for a reframe (its crop, or its letterbox)."""
    if job.transform.name == "reframe":
        from engine.transforms.reframe import crop_size, parse_aspect

        aspect = parse_aspect(job.transform.params["aspect"])
        if job.transform.params.get("extend") == "on" and aspect > width / height:
            from engine.transforms.extend import extended_size

            return extended_size(aspect, width, height)
        if job.transform.params.get("letterbox") == "on":
            return width, height
        return crop_size(aspect, width, height)
    return width, height

def _build_camera_transfer(job: Job, context: TransformContext) -> FrameTransform:
    from engine.transforms.camera_transfer import CameraTransferTransform

    return CameraTransferTransform.from_job(job, context)


def _build_product_swap(job: Job, context: TransformContext) -> FrameTransform:
    from engine.transforms.product_swap import ProductSwapTransform

    return ProductSwapTransform.from_job(job, context)


def _build_environment(job: Job, context: TransformContext) -> FrameTransform:
    from engine.transforms.environment import EnvironmentTransform

    return EnvironmentTransform.from_job(job, context)


def _build_relight(job: Job, context: TransformContext) -> FrameTransform:
    from engine.transforms.relight import RelightTransform

    return RelightTransform.from_job(job, context.colour, context.device)


def _build_motion_transfer(job: Job, context: TransformContext) -> FrameTransform:
    from engine.transforms.motion_transfer import MotionTransferTransform

    return MotionTransferTransform.from_job(job, context)


def _build_reframe(job: Job, context: TransformContext) -> FrameTransform:
    from engine.transforms.reframe import ReframeTransform

    return ReframeTransform.from_job(job, context)


BUILDERS: dict[str, Callable[[Job, TransformContext], FrameTransform]] = {
    "grade": _build_grade,
    "propagate": _build_propagate,
    "character": _build_propagate,
    "vfx": _build_propagate,
    "camera_transfer": _build_camera_transfer,
    "product_swap": _build_product_swap,
    "environment": _build_environment,
    "relight": _build_relight,
    "motion_transfer": _build_motion_transfer,
    "reframe": _build_reframe,
}


def build_transform(job: Job, context: TransformContext) -> FrameTransform:
    builder = BUILDERS.get(job.transform.name)
    if builder is None:
        raise JobError(f"transformation {job.transform.name!r} is not available in this engine",
                       path="$.transform.name", hint="one of: " + ", ".join(BUILDERS))
    return builder(job, context)
