"""``reframe``: a new aspect ratio after the take, following the subject.

The crop keeps the frame's full height (a narrower ratio: 9:16, 1:1, 4:5) or its full
width (a wider one: 2.39:1), and slides along the other axis on a path planned over
the whole plate before the first frame is written:

1. **where the subject is**, per frame (analysis at up to 960 px): the faces
   (full-range detector + landmarks; the largest face counts most), else the people
   (soft person mask's centroid); on a plate with neither, what moves relative to the
   camera (``engine.analysis.saliency``: optical flow less the camera's own motion, its
   weighted centroid and extent; frames where nothing moves have no subject and the path
   carries the crop through them); with no subject anywhere, the frame's centre;
2. **hold when still**: the target only moves when the subject leaves a dead band
   around it (``hold``, a fraction of the crop), so a subject that breathes, talks
   or shifts its weight leaves the frame locked off, as an operator would;
3. **smooth** (a Whittaker smoother on second differences, ``smoothness``): no jitter,
   bounded acceleration;
4. **safe area**: wherever the smoothed path would leave the subject outside the
   crop's safe area (its central ``SAFE`` share), the path is pulled back to it and
   smoothed again, until the subject is inside on every frame it can be;
5. **the artist's word**: a keyframe with a ``centre`` ([x, y], plate pixels) pins the
   crop there on that frame; the path eases to and from it.

``letterbox`` ``on`` puts a wider crop back into the source frame's size between
black bars (alpha 0), as a 2.39:1 letterbox inside a 16:9 delivery.

Frames in: (H, W, C) float32 ACEScg at the working size; out: the crop's size
(``output_size``), same channels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.errors import JobError
from engine.job import Job
from engine.transforms import TransformContext

__all__ = ["ReframeTransform", "parse_aspect", "crop_size", "plan_path", "SAFE"]

SAFE = 0.8   # the share of the crop (about its centre) the subject must stay inside
HOLD_FRAMES = 12   # a still subject for this many frames locks the crop off
EASE = 12          # frames over which the path eases to an artist's pinned framing (each side, doubled)
NAMED = {"9:16": 9 / 16, "1:1": 1.0, "4:5": 4 / 5, "16:9": 16 / 9, "2.39:1": 2.39, "4:3": 4 / 3}


def parse_aspect(text: str) -> float:
    """"9:16", "2.39:1", "1.85" -> width / height; JobError naming $.transform.aspect otherwise."""
    value = str(text).strip()
    if value in NAMED:
        return NAMED[value]
    try:
        if ":" in value:
            w, h = (float(v) for v in value.split(":"))
        else:
            w, h = float(value), 1.0
        if w > 0 and h > 0 and 0.1 <= w / h <= 10:
            return w / h
    except ValueError:
        pass
    raise JobError(f"unknown aspect ratio {text!r}", path="$.transform.aspect",
                   hint="give W:H such as 9:16, 1:1, 4:5 or 2.39:1")


def crop_size(aspect: float, width: int, height: int) -> tuple[int, int]:
    """The crop (w, h) of a ``width`` x ``height`` frame at ``aspect``: full height or full width, even sizes."""
    if aspect <= width / height:
        return max(2, int(round(height * aspect / 2.0)) * 2), height
    return width, max(2, int(round(width / aspect / 2.0)) * 2)


def _whittaker(target: np.ndarray, weights: np.ndarray, smoothness: float) -> np.ndarray:
    """argmin_x sum w (x - target)^2 + smoothness sum (second difference of x)^2."""
    from scipy.sparse import diags
    from scipy.sparse.linalg import spsolve

    n = len(target)
    if n < 3:
        return target.astype(np.float64).copy()
    d = diags([np.ones(n - 2), -2 * np.ones(n - 2), np.ones(n - 2)], [0, 1, 2], shape=(n - 2, n))
    system = diags(weights) + smoothness * (d.T @ d)
    return np.asarray(spsolve(system.tocsc(), weights * target), dtype=np.float64)


def _hold(subject: np.ndarray, band: float) -> np.ndarray:
    """A target that moves only when the subject leaves ``band`` around it (hysteresis)."""
    out = np.empty_like(subject)
    current = subject[0]
    for i, x in enumerate(subject):
        if x > current + band:
            current = x - band
        elif x < current - band:
            current = x + band
        out[i] = current
    return out


def plan_path(subject: np.ndarray, crop: float, extent: float, hold: float = 0.1, smoothness: float = 200.0,
              sizes: np.ndarray | None = None, fixed: dict[int, float] | None = None) -> np.ndarray:
    """The crop centre per frame along one axis.

    subject: (N,) the subject's centre (px; NaN where none was found: the path coasts);
    crop: the crop's length along the axis; extent: the frame's; sizes: (N,) the subject's
    half-extent along the axis (px; None: a point), so that all of it, not only its centre,
    stays in the safe area; fixed: {index: centre} the artist's own framing on those frames,
    which the path passes through exactly (the subject may leave the safe area there: the
    artist decided). Returns (N,) centres, inside [crop / 2, extent - crop / 2], smooth,
    holding still while the subject stays in its band.
    """
    half = crop / 2.0
    lo, hi = half, extent - half
    known = np.isfinite(subject)
    if not known.any():   # no subject anywhere: the frame's centre (and the artist's framing, if any)
        subject = np.full(len(subject), extent / 2.0)
        known = np.ones(len(subject), dtype=bool)
    filled = np.interp(np.arange(len(subject)), np.flatnonzero(known), subject[known])
    target = np.clip(_hold(filled, hold * crop), lo, hi)
    weights = np.where(known, 1.0, 0.05)
    # A held stretch of at least half a second at 24 fps is locked off exactly: the smoother
    # then only eases in and out of it, instead of drifting through it.
    # (A creep of a few pixels, the subject's noise reaching the band's edge, is part of the hold.)
    start = 0
    creep = 0.02 * crop
    for i in range(1, len(target) + 1):
        if i == len(target) or abs(target[i] - target[start]) > creep:
            if i - start >= HOLD_FRAMES:   # frames start..i-1 hold one target; ease in over the first
                target[start:i] = target[start]
                weights[start + HOLD_FRAMES // 2:i] = 1e4
            start = i
    pinned = np.zeros(len(subject), dtype=bool)
    for index, centre in (fixed or {}).items():
        # The target eases to the artist's framing and back over EASE frames each side (a raised
        # cosine), no hold is locked there, and the safe area gives way: the artist decided.
        centre = float(np.clip(centre, lo, hi))
        for j in range(max(0, index - 2 * EASE), min(len(target), index + 2 * EASE + 1)):
            share = 0.5 * (1.0 + math.cos(math.pi * min(1.0, abs(j - index) / (2.0 * EASE))))
            target[j] = target[j] * (1.0 - share) + centre * share
            weights[j] = min(weights[j], 1.0)
            pinned[j] = True
        weights[index] = 1e6
    path = np.clip(_whittaker(target, weights, smoothness), lo, hi)
    half_sizes = np.zeros(len(subject)) if sizes is None else np.nan_to_num(np.asarray(sizes, np.float64))
    reach = np.maximum(0.0, SAFE * half - half_sizes)
    for _ in range(20):   # pull the path back where the subject would leave the safe area
        off = np.abs(filled - path) > reach
        off &= known & ~pinned
        if not off.any():
            break
        wanted = np.clip(np.where(filled > path, filled - reach * 0.95, filled + reach * 0.95), lo, hi)
        target = np.where(off, wanted, target)
        weights = np.where(off, weights * 4.0 + 1.0, weights)
        path = np.clip(_whittaker(target, weights, smoothness), lo, hi)
    return path


@dataclass
class ReframeTransform:
    """``apply`` crops (H, W, C) float32 ACEScg frames along the planned path."""

    centres: dict[int, float]
    horizontal: bool
    crop: tuple[int, int]
    size: tuple[int, int]        # the working frame (width, height)
    letterbox: bool

    @property
    def output_size(self) -> tuple[int, int]:
        return self.size if self.letterbox else self.crop

    @classmethod
    def from_job(cls, job: Job, context: TransformContext) -> "ReframeTransform":
        params = job.transform.params
        width, height = context.size
        aspect = parse_aspect(params["aspect"])
        if params.get("extend") == "on":
            if aspect <= width / height:
                raise JobError(f"extend is for a wider ratio than the plate's ({params['aspect']} is not wider)",
                               path="$.transform.extend", hint='set "extend": "off" to crop instead')
            from engine.transforms.extend import ExtendTransform
            return ExtendTransform.from_context(context, aspect)  # type: ignore[return-value]
        crop = crop_size(aspect, width, height)
        horizontal = crop[0] < width
        if params["letterbox"] == "on" and horizontal:
            raise JobError(f"letterbox is for a wider ratio than the plate's ({params['aspect']} is narrower)",
                           path="$.transform.letterbox", hint='set "letterbox": "off" for 9:16, 1:1 or 4:5')
        from engine.transforms.homography import shared_analysis

        subjects = shared_analysis(context, ("subjects", params["subject"], horizontal),
                                   lambda: find_subjects(context, params["subject"], horizontal))
        frames = sorted(subjects)
        along = np.array([subjects[f][0] for f in frames], dtype=np.float64)
        sizes = np.array([subjects[f][1] for f in frames], dtype=np.float64)
        length, extent = (crop[0], width) if horizontal else (crop[1], height)
        plate_w = context.plate.width if context.plate is not None else width
        axis = 0 if horizontal else 1
        fixed = {frames.index(k.frame): k.centre[axis] * (width / plate_w)   # plate -> working px
                 for k in job.keyframes if k.centre is not None and k.frame in subjects}
        path = plan_path(along, length, extent, hold=float(params["hold"]), smoothness=float(params["smoothness"]),
                         sizes=sizes, fixed=fixed)
        return cls(dict(zip(frames, path.tolist())), horizontal, crop, (width, height), params["letterbox"] == "on")

    def window(self, frame: int) -> tuple[slice, slice]:
        """The crop's rows and columns on ``frame`` (whole pixels: no resampling of the picture)."""
        cw, ch = self.crop
        width, height = self.size
        centre = self.centres[frame]
        if self.horizontal:
            x0 = int(round(min(max(centre - cw / 2.0, 0.0), width - cw)))
            return slice(0, ch), slice(x0, x0 + cw)
        y0 = int(round(min(max(centre - ch / 2.0, 0.0), height - ch)))
        return slice(y0, y0 + ch), slice(0, cw)

    def apply(self, frame: int, image: np.ndarray) -> np.ndarray:
        rows, cols = self.window(frame)
        crop = np.ascontiguousarray(image[rows, cols], dtype=np.float32)
        if not self.letterbox:
            return crop
        out = np.zeros(image.shape, dtype=np.float32)
        top = (image.shape[0] - crop.shape[0]) // 2
        out[top:top + crop.shape[0]] = crop
        if image.shape[-1] == 4:
            out[..., 3] = 0.0
            out[top:top + crop.shape[0], :, 3] = crop[..., 3]
        return out


def find_subjects(context: TransformContext, how: str, horizontal: bool) -> dict[int, tuple[float, float]]:
    """The subject's (centre, half-extent) along the crop's moving axis per frame (working-size
    px; NaN, 0 where none was found).

    ``how``: ``faces``, ``people``, ``motion``, ``centre`` (none anywhere: the path holds the
    frame's centre) or ``auto``: faces, else people, frame by frame; a plate with neither on
    any frame follows what moves relative to the camera (``engine.analysis.saliency``). Motion
    is a plate-wide fallback, not a per-frame one: on a take with a person, a car crossing
    behind them on the frames where the detector misses them must not pull the crop away.

    Whether a plate has people at all is the pose detector's word, not the person mask's: the
    selfie segmentation model assumes someone is there and, on a landscape or a product shot,
    calls the most salient thing (a cup, the ground) a person.
    """
    from engine.analysis.pose import anyone_in
    from engine.transforms.homography import analysis_frames

    frames, scale = analysis_frames(context)
    axis = 0 if horizontal else 1
    nothing = (float("nan"), 0.0)
    found: dict[int, tuple[float, float]] = {frame: nothing for frame, _rgb8 in frames}
    seen_face = False
    detector = landmarker = segmenter = None
    if how in ("auto", "faces"):
        from engine.analysis.faces import FaceDetector, FaceLandmarker
        detector, landmarker = FaceDetector(), FaceLandmarker()
    if how in ("auto", "people"):
        from engine.analysis.masks import PersonSegmenter
        segmenter = PersonSegmenter()
    for frame, rgb8 in frames:
        if detector is None and segmenter is None:
            break
        centre = float("nan")
        if detector is not None:
            from engine.analysis.faces import detect_faces
            faces = detect_faces(rgb8, detector, landmarker)  # type: ignore[arg-type]
            if faces:
                seen_face = True
                # The larger a face, the more it leads: a close-up's face, not a passer-by's.
                sizes = np.array([f.box[3] - f.box[1] for f in faces], dtype=np.float64) ** 2
                centres = np.array([(f.box[axis] + f.box[axis + 2]) / 2.0 for f in faces])
                centre = float((sizes * centres).sum() / sizes.sum())
                lead = int(np.argmax(sizes))   # the leading face must fit, with a margin of a tenth
                extent = 0.6 * float(faces[lead].box[axis + 2] - faces[lead].box[axis])
        if np.isfinite(centre):
            found[frame] = (centre / scale, extent / scale)
            continue
        if segmenter is not None:
            mask = segmenter.raw_mask(rgb8)
            if mask.sum() > 0.002 * mask.size:
                profile = mask.sum(axis=1 - axis)
                centre = float((profile * (np.arange(len(profile)) + 0.5)).sum() / profile.sum())
                spread = float(np.sqrt((profile * (np.arange(len(profile)) + 0.5 - centre) ** 2).sum() / profile.sum()))
                extent = 1.5 * spread   # most of the person, not the tip of an outstretched arm
                found[frame] = (centre / scale, extent / scale)
    if how == "auto" and not seen_face and not anyone_in(frames, context.cancelled):
        # Nobody on the plate: what the person mask found there is not a person.
        how, found = "motion", {frame: nothing for frame in found}
    if how == "motion":
        from engine.analysis.saliency import moving_subjects

        # Frames where nothing moves stay NaN: plan_path gives them no weight and carries the
        # crop through them (held, eased) from the frames around.
        for frame, subject in moving_subjects(frames, context.cancelled).items():
            if subject is not None:   # a rigid subject: all of it, not most of it, must fit
                found[frame] = (subject.centre[axis] / scale, subject.extent[axis] / scale)
    return found
