"""Prompt keyframes made before propagation: one ACEScg EXR per keyframe, beside the output.

For each keyframe of a job with a ``prompt`` but no ``image``, the source frame is read
(the working space at the output size), a generator makes the keyframe, and it is
written atomically to ``OUT_DIR/keyframes/<name>.<frame>.exr`` (``<name>``: the output's
name without its frame token, e.g. ``sh010_retake``) as a half-float EXR with ACEScg
(AP1) chromaticities. Its header records what made it:

``retake/prompt``, ``retake/seed``, ``retake/structure``, ``retake/motion``,
``retake/backend``, ``retake/model``, ``retake/generator`` (the backend's fingerprint),
``retake/reference`` (when there is one: the image's path, or ``keyframe <frame>``, see
below), ``retake/frame``, ``retake/keyStamp`` (a digest of all of these plus the source
frame's and the reference's pixels) and ``retake/pixelHash`` (a digest of the half-float
pixels as written).

The rule for a file that is already there (the artist may have touched it up, and a
touch-up must never be lost):

* same ``keyStamp`` and same pixels: Retake's own, current keyframe -> reused as is;
* same ``keyStamp``, other pixels: touched up -> kept as is;
* no ``keyStamp`` (written by another tool, e.g. an edit saved from Nuke): kept, with a
  warning that it is not regenerated;
* another ``keyStamp`` (the prompt, seed, model, controls or source frame changed):
  kept, with a warning saying to delete it to generate it anew. Only with
  ``replace_unedited=True``, and only when its pixels are exactly what Retake wrote
  (``pixelHash``), is it generated again in place: nothing of an artist's is in it.

Every keyframe is made with the job's ``seed``: the same noise for all keyframes of a
shot keeps their look closer together. When the generator uses reference images
(``supports_reference``, e.g. diffusers with an IP-Adapter), the first prompt keyframe
in frame order sets the shot's look: every later prompt keyframe without a
``reference`` of its own gets that keyframe's file (as it is on disk, just generated or
kept) as its reference, recorded as ``retake/reference = "keyframe <frame>"``. Its
pixels are in the later keyframes' ``keyStamp``, so touching up the first keyframe
makes the later ones stale (kept, with a warning, like any other change).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import OpenEXR

from engine import __version__
from engine.errors import CancelledError, InputError, JobError
from engine.generate.base import GenerateRequest, Generator, get_generator
from engine.generate.prompts import lint_prompt
from engine.io.aces_exr import read_exr_attributes, write_exr
from engine.io.atomic import atomic_output
from engine.io.header import AP1
from engine.job import Job, Keyframe

if TYPE_CHECKING:
    import torch

    from engine.colour import Colour

__all__ = ["KEYFRAME_FOLDER", "generate_missing_keyframes", "keyframe_path", "needs_generation"]

KEYFRAME_FOLDER = "keyframes"
_log = logging.getLogger(__name__)


def needs_generation(job: Job) -> bool:
    """Whether some keyframe of ``job`` has a prompt but no image."""
    return any(key.image is None and key.prompt for key in job.keyframes)


def _output_stem(output_path: str) -> str:
    """``out/sh010_retake.####.exr`` -> ``sh010_retake``; ``out/sh010.mov`` -> ``sh010``."""
    name = os.path.basename(output_path)
    for token in ("#", "%", "@"):
        if token in name:
            return name[: name.index(token)].rstrip("._-") or "keyframe"
    return os.path.splitext(name)[0] or "keyframe"


def keyframe_path(job: Job, out_dir: str, frame: int) -> str:
    """Where the generated keyframe for ``frame`` lives: ``out_dir/keyframes/<name>.<frame>.exr``."""
    return os.path.join(out_dir, KEYFRAME_FOLDER, f"{_output_stem(job.output.path)}.{frame:04d}.exr")


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _half(image: np.ndarray) -> np.ndarray:
    """The pixels as ``write_exr`` stores them (finite values saturate at the half range)."""
    return np.clip(image, -65504.0, 65504.0).astype(np.float16)


def _pixel_hash_of_file(path: str) -> str | None:
    """The digest of the file's R, G, B as half floats, or None when it cannot be read so."""
    try:
        channels = OpenEXR.File(path, separate_channels=True).channels()
        rgb = np.stack([channels[name].pixels for name in ("R", "G", "B")], axis=-1)
    except Exception:  # any tool may have written anything there; "unknown" is the answer
        return None
    return _digest(rgb.astype(np.float16))


def _read_still(path: str, colour: Colour) -> np.ndarray:
    """The image file ``path`` as (h, w, 3) float32 ACEScg, in the colour space its file says.

    Raises InputError when it cannot be read or is not a finite RGB image.
    """
    from engine.io.plates import open_still

    with open_still(path) as still:
        pixels = still.read(still.info.first)
        header = still.info.header
    if pixels.ndim != 3 or pixels.shape[2] < 3 or not np.isfinite(pixels).all():
        raise InputError("not a finite RGB image", path=path, hint="give an RGB or RGBA image without NaN/Inf")
    rgb = np.ascontiguousarray(pixels[..., :3], dtype=np.float32)
    return np.ascontiguousarray(colour.to_working(rgb, colour.colorspace_for_header(header)), dtype=np.float32)


def _read_reference(key: Keyframe, index: int, colour: Colour) -> np.ndarray:
    """The keyframe's reference image as (h, w, 3) float32 ACEScg, in the colour space its file says."""
    try:
        return _read_still(key.reference or "", colour)
    except InputError as error:
        raise JobError(f"cannot read the reference image {key.reference!r}: {error}",
                       path=f"$.keyframes[{index}].reference",
                       hint="give an EXR, PNG, TIFF or DPX still, RGB or RGBA without NaN/Inf") from error


def _key_stamp(request: GenerateRequest, generator: Generator, size: tuple[int, int]) -> str:
    fields = {
        "prompt": request.prompt, "seed": request.seed, "structure": request.structure, "motion": request.motion,
        "frame": request.frame, "size": list(size), "backend": generator.name, "generator": generator.fingerprint,
        "source": _digest(request.source),
        "reference": None if request.reference is None else _digest(request.reference),
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _existing_state(path: str, stamp: str) -> str:
    """"absent", "current", "touched" (same stamp, other pixels), "foreign" (no stamp), "stale" or "stale-edited"."""
    if not os.path.exists(path):
        return "absent"
    try:
        attributes = read_exr_attributes(path)
    except Exception:  # not an EXR we can read: someone else's file, never ours to replace
        return "foreign"
    recorded = attributes.get("retake/keyStamp")
    if not isinstance(recorded, str):
        return "foreign"
    untouched = attributes.get("retake/pixelHash") == _pixel_hash_of_file(path)
    if recorded == stamp:
        return "current" if untouched else "touched"
    return "stale" if untouched else "stale-edited"


def generate_missing_keyframes(
    job: Job,
    colour: Colour,
    read_source: Callable[[int], np.ndarray],
    size: tuple[int, int],
    out_dir: str,
    device: torch.device | str,
    generator: Generator | None = None,
    *,
    on_warning: Callable[[str], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    replace_unedited: bool = False,
) -> list[tuple[int, str]]:
    """Make (or reuse) an image for every keyframe of ``job`` that has a prompt and no image.

    read_source(frame) -> (H, W, C>=3) float32 scene-linear ACEScg at ``size``
    (width, height), the pipeline's own reader. ``out_dir``: the output's folder; files
    go to ``out_dir/keyframes/``. ``generator``: None builds the configured one
    (``get_generator(device=..., colour=...)``: ``$RETAKE_GENERATOR``, ``$RETAKE_MODEL_DIR``),
    and only when some keyframe really has to be generated. ``on_warning`` receives
    each warning (default: this module's logger); ``cancelled`` is asked before each
    keyframe. With a generator that uses references, the first such keyframe's file is
    the reference of every later one that has none (the module's docstring says why).
    Returns ``(frame, path)`` for each such keyframe, in frame order, for the caller to
    set as the keyframe's ``image`` (leave its ``colorspace`` unset: the file's
    chromaticities say ACEScg, and an edited file says what its tool wrote).
    """
    warn = on_warning or _log.warning
    todo = [(i, key) for i, key in enumerate(job.keyframes) if key.image is None and key.prompt]
    width, height = size
    results: list[tuple[int, str]] = []
    # The shared look: (frame, pixels) of the first prompt keyframe's file, read once a
    # generator that uses references is at hand and that keyframe is settled.
    look: tuple[int, np.ndarray] | None = None
    look_read = False
    for index, key in todo:
        if cancelled is not None and cancelled():
            raise CancelledError(f"cancelled while making prompt keyframes ({len(results)} of {len(todo)} ready); "
                                 "those written are kept and reused")
        prompt = (key.prompt or "").strip()
        for finding in lint_prompt(prompt)[:1]:
            warn(f"keyframe {key.frame}: the prompt {prompt!r} is not a target state ({finding.message}); "
                 f"try: {finding.suggestion}")
        source = np.ascontiguousarray(read_source(key.frame)[..., :3], dtype=np.float32)
        if source.shape[:2] != (height, width):
            raise ValueError(f"read_source({key.frame}) gave {source.shape[1]}x{source.shape[0]}, "
                             f"expected the output size {width}x{height}")
        reference = _read_reference(key, index, colour) if key.reference else None
        path = keyframe_path(job, out_dir, key.frame)
        if generator is None:
            try:
                generator = get_generator(device=str(device), colour=colour)
            except InputError as error:
                if not os.path.exists(path):
                    raise
                # A render node without the model can still propagate the keyframes made elsewhere.
                warn(f"keyframe {key.frame}: {path} is used as it is (no generator here to check it against: "
                     f"{error})")
                results.append((key.frame, path))
                continue
        if generator.supports_reference and results and not look_read:
            look_read = True
            first_frame, first_path = results[0]
            try:
                look = (first_frame, _read_still(first_path, colour))
            except InputError as error:
                warn(f"keyframe {first_frame}: {first_path} cannot set the look of the later keyframes ({error}); "
                     "they are made without it")
        reference_name = key.reference
        if reference is None and look is not None:
            reference, reference_name = look[1], f"keyframe {look[0]}"
        request = GenerateRequest(source=source, prompt=prompt, reference=reference,
                                  structure=job.controls.structure, motion=job.controls.motion,
                                  seed=job.seed, frame=key.frame)
        stamp = _key_stamp(request, generator, size)
        state = _existing_state(path, stamp)
        if state in ("current", "touched"):
            results.append((key.frame, path))
            continue
        if state == "foreign":
            warn(f"keyframe {key.frame}: {path} was not written by Retake (or lost its header): kept as the "
                 "keyframe and not generated; delete it to generate it from the prompt")
            results.append((key.frame, path))
            continue
        if state == "stale-edited" or (state == "stale" and not replace_unedited):
            edited = " and has been edited" if state == "stale-edited" else ""
            warn(f"keyframe {key.frame}: {path} was generated from another prompt, seed, model, controls, reference "
                 f"or source frame{edited}: kept as it is; delete it to generate it anew")
            results.append((key.frame, path))
            continue
        if reference is not None and not generator.supports_reference:
            warn(f"keyframe {key.frame}: the {generator.name!r} generator does not use reference images yet; "
                 f"{key.reference} is ignored")
        image = generator.generate(request)
        if image.shape != source.shape or not np.isfinite(image).all():
            raise InputError(f"the {generator.name!r} generator returned a {image.shape} image "
                             f"{'' if np.isfinite(image).all() else 'with NaN/Inf '}for a {source.shape} frame",
                             frame=key.frame, hint="fix the generator backend")
        half = _half(np.asarray(image, dtype=np.float32))
        metadata: dict[str, str | int] = {
            "retake/prompt": prompt, "retake/seed": int(job.seed), "retake/structure": job.controls.structure,
            "retake/motion": job.controls.motion, "retake/backend": generator.name, "retake/model": generator.model,
            "retake/generator": generator.fingerprint, "retake/keyStamp": stamp,
            "retake/pixelHash": _digest(half), "retake/version": __version__,
        }
        if reference_name:
            metadata["retake/reference"] = reference_name
        with atomic_output(path) as tmp:
            write_exr(tmp, half.astype(np.float32), chromaticities=AP1, aces_container=False, frame=key.frame,
                      metadata=metadata)
        results.append((key.frame, path))
    return results
