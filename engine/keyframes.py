"""Keyframe images: read, convert to the working space, fit to the output size, check.

A keyframe image is one still (EXR, PNG, TIFF, DPX), opened as a one-frame plate.
Its colour space is the keyframe's ``colorspace`` when given, else what the file says
(``Colour.colorspace_for_header``, the same rule as the plate's).

Size policy (decided here, documented in the error): the image must have the output's
aspect ratio. Same aspect at another size (a keyframe painted at source size while a
draft renders at 360 lines, or a half-res paint) is resampled to the output size with
``engine.resize.resize``, silently. A different aspect ratio cannot be fitted without
guessing a crop, so it is a ``JobError`` naming ``$.keyframes[i].image``, both sizes and
what to do.
"""
from __future__ import annotations

import numpy as np
import torch

from engine.colour import Colour
from engine.errors import InputError, JobError
from engine.io.plates import open_still
from engine.job import Job, Keyframe
from engine.resize import resize

__all__ = ["ASPECT_TOLERANCE", "load_keyframe_image", "load_keyframe_matte", "check_keyframes"]

# Relative aspect difference still called "the same aspect" (rounding of odd sizes).
ASPECT_TOLERANCE = 0.01


def load_keyframe_image(key: Keyframe, index: int, colour: Colour, size: tuple[int, int],
                        device: torch.device | str = "cpu") -> np.ndarray:
    """Keyframe ``index``'s image as (H, W, 3) float32 working space at ``size`` (width, height).

    Raises JobError (naming ``$.keyframes[index].image``) when the image is missing,
    unreadable, of another aspect ratio, or holds NaN/Inf values.
    """
    path = f"$.keyframes[{index}].image"
    if key.image is None:
        raise JobError(f"keyframe at frame {key.frame} has no image", path=f"$.keyframes[{index}]",
                       hint='the propagate transformation needs "image": "PATH" on every keyframe '
                            "(the frame as it should become)")
    try:
        with open_still(key.image) as still:
            pixels = still.read(still.info.first)
            header = still.info.header
    except InputError as error:
        raise JobError(f"cannot read keyframe image {key.image!r}: {error}", path=path,
                       hint="give an EXR, PNG, TIFF or DPX still") from error
    if pixels.ndim != 3 or pixels.shape[2] < 3:
        raise JobError(f"keyframe image {key.image!r} has {pixels.shape[-1] if pixels.ndim == 3 else 1} channel(s)",
                       path=path, hint="give an RGB or RGBA image")
    finite = np.isfinite(pixels)
    if not finite.all():
        nan = int(np.isnan(pixels).sum())
        raise JobError(f"keyframe image {key.image!r} holds {nan} NaN and {int((~finite).sum()) - nan} Inf values",
                       path=path, hint="fix the image (NaN/Inf cannot be propagated)")
    if key.colorspace is not None:
        space = colour.resolve_colorspace(key.colorspace)
    else:
        space = colour.colorspace_for_header(header)
    rgb = np.ascontiguousarray(pixels[..., :3], dtype=np.float32)
    working = colour.to_working(rgb, space)
    h, w = working.shape[:2]
    out_w, out_h = size
    if (w, h) != (out_w, out_h):
        if abs((w / h) / (out_w / out_h) - 1.0) > ASPECT_TOLERANCE:
            raise JobError(f"keyframe image {key.image!r} is {w}x{h}, the output is {out_w}x{out_h} "
                           "(another aspect ratio)", path=path,
                           hint=f"export the keyframe at {out_w}x{out_h} (or any size of the same aspect ratio, "
                                "which is resampled), from the plate's own frame")
        working = resize(working, out_w, out_h, torch.device(device))
    working = np.ascontiguousarray(working, dtype=np.float32)
    if not np.isfinite(working).all():  # a colour conversion of extreme values
        raise JobError(f"keyframe image {key.image!r} gives non-finite values in the working space", path=path,
                       hint="check its colorspace")
    return working


def load_keyframe_matte(key: Keyframe, size: tuple[int, int], device: torch.device | str = "cpu") -> np.ndarray | None:
    """The alpha of keyframe ``key``'s image as (H, W) float32 0..1 at ``size``, or None when it has none.

    For transformations that carry an effect's matte (``vfx``): where the artist painted the
    effect. Call it after ``load_keyframe_image`` has checked the file.
    """
    with open_still(key.image) as still:   # type: ignore[arg-type]
        pixels = still.read(still.info.first)
    if pixels.ndim != 3 or pixels.shape[2] < 4:
        return None
    alpha = np.ascontiguousarray(np.nan_to_num(pixels[..., 3:4], nan=0.0), dtype=np.float32)
    out_w, out_h = size
    if alpha.shape[:2] != (out_h, out_w):
        alpha = resize(alpha, out_w, out_h, torch.device(device))
    return np.clip(alpha[..., 0], 0.0, 1.0)


def check_keyframes(job: Job, colour: Colour, size: tuple[int, int], device: torch.device | str = "cpu") -> None:
    """Load and check every keyframe image once (errors before any frame is rendered)."""
    if not job.keyframes:
        raise JobError("the propagate transformation needs at least one keyframe", path="$.keyframes",
                       hint='add {"frame": N, "image": "PATH"} for each frame the artist has made')
    for i, key in enumerate(job.keyframes):
        load_keyframe_image(key, i, colour, size, device)
