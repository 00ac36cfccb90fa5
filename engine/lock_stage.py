"""The lock stage of the pipeline: the job's ``locks`` applied to every transformed frame.

``engine.locks`` holds the operations; this stage finds their regions on each source
frame with the analysis models and applies them, coarse to fine, after the
transformation (DESIGN.md: synthesise -> lock -> frame -> write):

* ``blocking``: the subjects' coarse placement. The people's mask, coarsened to about
  a twentieth of the frame and grown by a margin, is held from outside: nothing of
  the subject's edit lands beyond that margin, while the subject may be restyled
  freely inside it (stylised or non-human transformations).
* ``bodies``: the source's person silhouette, both sides, within a band of ~2.5 % of
  the person's height (``silhouette_lock``).
* ``poses``: the skeleton of every person (33-landmark pose): along the limbs the
  result has the source's structure (``structure_lock``, sigma 8 % of the torso).
* ``faces``: every face (up to 8; full-range detector + 468 landmarks per face crop):
  inside the face the result has the source's identity structure and expression,
  frame by frame (``structure_lock``, sigma 6 % of the face height).

The analysis is made per frame on that frame's source alone (no tracker state), so a
frame's result never depends on which frames were rendered before it: farm chunks and
resumed renders stay bit-identical to a whole run. One question is asked of the whole
plate instead, once: whether anyone is on it at all (``people_on_plate``, the pose
detector's word, ``plate_has_people``). The person segmentation model behind ``bodies``
and ``blocking`` assumes someone is there and on a landscape calls the ground a person
(40-75 % of the demo plate's frames); on a plate with nobody those locks hold nothing.
The answer depends on the plate alone, never on which frames a chunk renders. Keyframes are locked too: otherwise
a keyframe whose paint moved a feature would pop against its locked neighbours.

Frames in and out: (H, W, C) float32 scene-linear ACEScg; alpha is left untouched.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from engine.colour import Colour
from engine.job import Locks
from engine.locks import FACE_DETAIL, POSE_DETAIL, face_regions, limb_regions, silhouette_lock, structure_lock

__all__ = ["LockStage", "blocking_outline", "plate_has_people", "BODY_BAND", "BLOCKING_MARGIN"]

BODY_BAND = 0.025        # of the person's height: the band around the outline that ``bodies`` holds
BLOCKING_MARGIN = 0.04   # of the frame's longer side: how far a subject may change shape under ``blocking``


def _box(weight: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """The rows and columns where ``weight`` > 0, grown by ``margin`` and clipped to the frame."""
    rows = np.flatnonzero(weight.any(axis=1))
    cols = np.flatnonzero(weight.any(axis=0))
    if len(rows) == 0:
        return None
    h, w = weight.shape
    return (slice(max(0, rows[0] - margin), min(h, rows[-1] + 1 + margin)),
            slice(max(0, cols[0] - margin), min(w, cols[-1] + 1 + margin)))


def blocking_outline(person: np.ndarray, width: int, height: int) -> tuple[np.ndarray, float]:
    """The area a subject may fill under ``blocking``, and the band beyond it that is held.

    person: (H, W) float32 soft person mask. The mask is coarsened to cells of a
    twentieth of the frame's longer side (its placement, not its shape) and grown by
    half of ``BLOCKING_MARGIN``; the band held outside it is one ``BLOCKING_MARGIN``
    wide. Returns ((H, W) float32 {0, 1}, band in px).
    """
    import cv2

    side = max(width, height)
    cell = max(1, side // 20)
    coarse = cv2.resize(person, (max(1, width // cell), max(1, height // cell)), interpolation=cv2.INTER_AREA)
    coarse = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)
    margin = max(2, int(round(BLOCKING_MARGIN * side)))
    grown = cv2.dilate((coarse > 0.25).astype(np.uint8), np.ones((3, 3), np.uint8), iterations=max(1, margin // 2))
    return grown.astype(np.float32), float(margin)


def plate_has_people(source: Callable[[int], np.ndarray], frames: tuple[int, int], colour: Colour,
                     cancelled: Callable[[], bool] = lambda: False, side: int = 960, stride: int = 8) -> bool:
    """Whether the pose detector finds a person on any frame first..last of the plate.

    source(frame) -> (H, W, C) float32 ACEScg. Frames are looked at no wider than ``side``,
    every ``stride``-th frame first (someone on the plate is usually found at once), then
    the rest; it stops at the first person.
    """
    import cv2

    from engine.analysis.frames import display_rgb8
    from engine.analysis.pose import anyone_in

    first, last = frames
    order = list(range(first, last + 1, stride)) + [f for f in range(first, last + 1) if (f - first) % stride]

    def looked_at():
        for frame in order:
            working = np.ascontiguousarray(source(frame)[..., :3], dtype=np.float32)
            scale = min(1.0, side / max(working.shape[:2]))
            if scale < 1.0:
                size = (max(1, round(working.shape[1] * scale)), max(1, round(working.shape[0] * scale)))
                working = cv2.resize(working, size, interpolation=cv2.INTER_AREA)
            yield frame, display_rgb8(colour, working)

    return anyone_in(looked_at(), cancelled)


class LockStage:
    """The locks of one job. ``apply(frame, source, result)`` with (H, W, C) float32 ACEScg."""

    def __init__(self, locks: Locks, colour: Colour, device: str = "cpu", threads: int | None = None,
                 people_on_plate: Callable[[], bool] | None = None) -> None:
        self.locks = locks
        # Asked on the first frame that needs it (a resumed render with nothing left asks nothing).
        self._people_on_plate = people_on_plate
        self._people: bool | None = None if people_on_plate is not None else True
        self.colour = colour
        self.device = torch.device(device)
        # Loading the models here makes a missing model an error before the first frame,
        # naming the command that installs it (engine.analysis.models).
        self._faces: tuple[object, object] | None = None
        self._segmenter = None
        self._pose = None
        if locks.faces:
            from engine.analysis.faces import FaceDetector, FaceLandmarker
            self._faces = (FaceDetector(threads=threads), FaceLandmarker(threads=threads))
        if locks.bodies or locks.blocking:
            from engine.analysis.masks import PersonSegmenter
            self._segmenter = PersonSegmenter(threads=threads)
        if locks.poses:
            from engine.analysis.pose import PoseEstimator
            self._pose = PoseEstimator(threads=threads)
        self.found: dict[str, int] = {"faces": 0, "people": 0, "skeletons": 0}
        self.frames_without: dict[str, list[int]] = {"faces": [], "bodies": [], "poses": [], "blocking": []}

    @classmethod
    def from_locks(cls, locks: Locks, colour: Colour, device: str,
                   people_on_plate: Callable[[], bool] | None = None) -> "LockStage | None":
        if not any((locks.faces, locks.bodies, locks.poses, locks.blocking)):
            return None
        return cls(locks, colour, device, people_on_plate=people_on_plate)

    def _anyone(self) -> bool:
        if self._people is None:
            assert self._people_on_plate is not None
            self._people = bool(self._people_on_plate())
        return self._people

    def _tensor(self, image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(image[..., :3], dtype=np.float32)).to(
            self.device).permute(2, 0, 1)[None].contiguous()

    def _in_box(self, op: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor], source: torch.Tensor,
                result: torch.Tensor, weight: np.ndarray, margin: int) -> torch.Tensor:
        """Run ``op(source, result, weight)`` on the part of the frame the region can reach."""
        box = _box(weight, margin)
        if box is None:
            return result
        ys, xs = box
        w = torch.from_numpy(np.ascontiguousarray(weight[ys, xs])).to(self.device)[None, None]
        out = result.clone()
        out[..., ys, xs] = op(source[..., ys, xs], result[..., ys, xs], w)
        return out

    def analyse(self, rgb8: np.ndarray) -> dict[str, object]:
        """What the locks need from one (H, W, 3) uint8 sRGB source frame."""
        found: dict[str, object] = {}
        if self._faces is not None:
            from engine.analysis.faces import detect_faces
            detector, landmarker = self._faces
            found["faces"] = [f.landmarks for f in detect_faces(rgb8, detector, landmarker)]  # type: ignore[arg-type]
        if self._segmenter is not None:
            found["person"] = (self._segmenter.raw_mask(rgb8) if self._anyone()
                               else np.zeros(rgb8.shape[:2], dtype=np.float32))
        if self._pose is not None:
            found["skeletons"] = [(p.landmarks, p.visibility) for p in self._pose.people(rgb8)]
        return found

    def apply(self, frame: int, source: np.ndarray, result: np.ndarray) -> np.ndarray:
        """The locked frame: (H, W, C) float32 ACEScg source and result -> (H, W, C) like ``result``."""
        from engine.analysis.frames import display_rgb8

        height, width = source.shape[:2]
        found = self.analyse(display_rgb8(self.colour, source))
        s, r = self._tensor(source), self._tensor(result)
        out = r
        with torch.no_grad():
            person = found.get("person")
            if person is not None:
                person = np.asarray(person, dtype=np.float32)
                rows = np.flatnonzero((person > 0.5).any(axis=1))
                if len(rows) == 0:
                    for name in ("bodies", "blocking"):
                        if getattr(self.locks, name):
                            self.frames_without[name].append(frame)
                else:
                    self.found["people"] += 1
                    tall = float(rows[-1] - rows[0] + 1)
                    if self.locks.blocking:
                        out = self._blocking(s, out, person, width, height)
                    if self.locks.bodies:
                        band = max(2.0, BODY_BAND * tall)
                        mask = torch.from_numpy(person).to(self.device)[None, None]
                        out = silhouette_lock(s, out, mask, band)
            skeletons = found.get("skeletons")
            if skeletons is not None:
                regions = limb_regions(skeletons, width, height)  # type: ignore[arg-type]
                if not any(weight.any() for weight, _ in regions):
                    self.frames_without["poses"].append(frame)
                out = self._structure(s, out, regions, POSE_DETAIL, "skeletons")
            faces = found.get("faces")
            if faces is not None:
                if not faces:
                    self.frames_without["faces"].append(frame)
                out = self._structure(s, out, face_regions(faces, width, height), FACE_DETAIL,  # type: ignore[arg-type]
                                      "faces")
        locked = np.array(result, dtype=np.float32, copy=True)
        locked[..., :3] = out[0].permute(1, 2, 0).cpu().numpy()
        return locked

    def _structure(self, s: torch.Tensor, out: torch.Tensor, regions: list[tuple[np.ndarray, float]],
                   detail: float, counter: str) -> torch.Tensor:
        """``structure_lock`` in each region, with sigma ``detail`` times the region's size."""
        for weight, size in regions:
            if not weight.any():
                continue
            self.found[counter] += 1
            sigma = max(1.0, detail * size)
            out = self._in_box(lambda a, b, w, sg=sigma: structure_lock(a, b, w, sg), s, out, weight, int(3 * sigma) + 2)
        return out

    def _blocking(self, s: torch.Tensor, r: torch.Tensor, person: np.ndarray, width: int, height: int) -> torch.Tensor:
        outline, band = blocking_outline(person, width, height)
        mask = torch.from_numpy(outline).to(self.device)[None, None]
        return silhouette_lock(s, r, mask, band, sides="outside")

    def warnings(self) -> list[str]:
        """One line per lock that found nothing to hold on some frames (said once, after the render)."""
        from engine.io.describe import compress_frames

        lines = []
        if self._people is False and (self.locks.bodies or self.locks.blocking):
            lines.append("locks.bodies/blocking: the pose detector finds nobody on the plate, so the person mask "
                         "is not trusted and those locks hold nothing")
        what = {"faces": "no face", "bodies": "no person", "poses": "no body pose", "blocking": "no person"}
        for name, frames in self.frames_without.items():
            if frames:
                lines.append(f"locks.{name}: {what[name]} found on {len(frames)} frame(s) "
                             f"({compress_frames(frames)}); those frames are not locked for it")
        return lines
