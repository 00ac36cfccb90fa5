"""``motion_transfer`` mode ``body``: a character driven by the actor's pose.

The actor (the take's largest, most present person) is measured on every frame by
MediaPipe BlazePose (``engine.analysis.pose``, 33 landmarks), the target character on
the target still. Then, in order:

1. Steadying. The landmark crop of each frame is carried from its neighbour's pose
   (outwards from the reference frame, as MediaPipe tracks), not re-detected: on a
   half-body the pose detector's crop changes by up to 8 % of its size between two
   renders a pixel apart, and the landmarks jump with it (3-8 px on the face, up to 20 on
   the shoulders and 40 on the elbows, on a 400 px frame). Each frame's landmarks are the median over nine slightly
   shifted, scaled and turned crops. A landmark the model calls invisible, or one outside
   the frame (guessed, not seen), is dropped; a track's one-frame jumps (a Hampel test on
   a five-frame window) are dropped; dropped values hold the last pose, as does a frame
   without the actor; each track is smoothed by the One Euro filter run forwards and
   backwards (averaged, so it does not lag).
2. Bones. Per bone (torso, head, upper and lower arms and legs), the move from the
   reference frame to now in the actor's pixels: a robust similarity for the torso and
   the head (their landmarks fitted together, a misplaced one dropping out, as
   ``FaceDrive.actor_motion`` does), and for a limb its turn, the body's scale and a
   stretch along the limb (its foreshortening).
3. Refining on the pixels. Steadied, the landmarks of a moving half-body still drift with
   the framing (the astronaut photograph moved by a known similarity: face 1.9 px median,
   10 max; shoulders and arms 8 px median, 24 max; steadying only halves the jitter of a
   still take, 1.05 -> 0.56 px, the drift is not noise), and 8 px on a shoulder turns a
   torso visibly. So each bone's move is checked on the actor's own pixels: the
   reference frame is warped by the bones' skinning (the pose's guess of this frame), the
   optical flow from the frame to that guess measures what it missed, and the bone's pixels
   are fitted with a robust similarity; the landmarks' guess and the body moving rigidly
   are both tried, the better fit kept (``refine_moves``). On the astronaut moved rigidly
   the bones land within 0.5 px (2-35 px by the landmarks alone); a synthetic forearm's
   turn that its landmarks got 8 degrees wrong, within 0.5 px at the wrist. The landmarks give the skeleton, the
   bones' parts and the first guess; a bone too small to check on the pixels moves with its
   parent, one whose pixels match neither guess (blur, cloth) keeps the landmarks' move.
4. Transfer. Moves are chained down the target's skeleton (forward kinematics): a limb
   turns about the target's own joint, wherever its parent took that joint, so a target of
   other proportions keeps its limbs attached. The root's shift maps onto the target by the
   similarity between the two bodies (their landmarks fitted: as good as the two bodies'
   landmarks agree; 10 % on the scale and 2 degrees of turn between two framings of the
   same astronaut).
5. Skinning. Each target pixel follows the bones by weights from its distance to each
   bone segment (an inverse power, softened, normalised: linear-blend skinning); the
   inverse map (which target pixel each output pixel shows) is solved by Newton steps.
   The target is sampled sharply in ACEScct (``warp_sharp``), and its person mask, moved
   the same way, lays the character over the still background: the background does not
   move with the bones. Where the character leaves ground it covered on the target, that
   ground is a smooth fill (push-pull) of its surroundings, not a reconstruction; the soft
   edge of the mask leaves a faint trace of the character's old outline there, and what
   the person mask takes for the person (a cup behind a head) moves with it.

About 1.2 s a 1080p frame on two CPU cores (three optical flows), after a first pass over
the take for the poses (nine landmark-model runs a frame).

Landmarks are frame pixels (x, y), pixel centres at +0.5.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from engine.analysis.crops import Roi

__all__ = ["BONES", "Bone", "BodyDrive", "Observation", "actor_moves", "refine_moves", "skin_weights", "skinned_source",
           "skinning_map", "steady_tracks", "track_actor", "transfer_moves"]

MIN_VISIBILITY = 0.5
MIN_PRESENCE = 0.5
# The crops of one observation: (dx, dy) in crop widths, scale, turn (radians).
JITTERS = ((0.0, 0.0, 1.0, 0.0), (0.02, 0.0, 1.0, 0.0), (-0.02, 0.0, 1.0, 0.0), (0.0, 0.02, 1.0, 0.0),
           (0.0, -0.02, 1.0, 0.0), (0.0, 0.0, 1.04, 0.0), (0.0, 0.0, 0.96, 0.0), (0.0, 0.0, 1.0, 0.05),
           (0.0, 0.0, 1.0, -0.05))


@dataclass(frozen=True)
class Bone:
    """A bone: its segment from the mean of the ``start`` landmarks to the mean of ``end``; the
    landmarks its move is fitted on (``fit``); its ``parent``'s name; and the joint it turns about
    (``pivot``, landmark means; the segment's start when empty)."""

    name: str
    start: tuple[int, ...]
    end: tuple[int, ...]
    fit: tuple[int, ...]
    parent: str | None
    pivot: tuple[int, ...] = ()


# BlazePose indices: 0-10 face, 11/12 shoulders, 13/14 elbows, 15/16 wrists, 23/24 hips,
# 25/26 knees, 27/28 ankles (odd = the person's left). Parents before children.
BONES: tuple[Bone, ...] = (
    Bone("torso", (11, 12), (23, 24), (11, 12, 23, 24), None),
    Bone("head", (9, 10), (2, 5), tuple(range(11)), "torso", pivot=(11, 12)),
    Bone("left_upper_arm", (11,), (13,), (11, 13), "torso"),
    Bone("left_forearm", (13,), (15,), (13, 15), "left_upper_arm"),
    Bone("right_upper_arm", (12,), (14,), (12, 14), "torso"),
    Bone("right_forearm", (14,), (16,), (14, 16), "right_upper_arm"),
    Bone("left_thigh", (23,), (25,), (23, 25), "torso"),
    Bone("left_shin", (25,), (27,), (25, 27), "left_thigh"),
    Bone("right_thigh", (24,), (26,), (24, 26), "torso"),
    Bone("right_shin", (26,), (28,), (26, 28), "right_thigh"),
)


@dataclass
class Observation:
    """One person on one frame: ``landmarks`` (33, 2) float64 frame pixels, ``visibility`` (33,)
    0..1, ``presence`` 0..1, the landmark crop ``roi``; ``mask`` (H, W) float32 0..1 or None."""

    landmarks: np.ndarray
    visibility: np.ndarray
    presence: float
    roi: Roi
    mask: np.ndarray | None = None


# --------------------------------------------------------------------------- fits

def similarity(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The least-squares similarity (no mirror) taking ``src`` (N, 2) onto ``dst``: (2, 2) linear
    part and (2,) shift, ``dst ~ src @ linear.T + shift``."""
    from engine.transforms.motion_transfer import _similarity

    linear = _similarity(src, dst)
    return linear, dst.mean(axis=0) - src.mean(axis=0) @ linear.T


def robust_similarity(src: np.ndarray, dst: np.ndarray, size: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``similarity`` refitted without the points far from where the others put them (beyond
    three times the median residual, and beyond 2 % of ``size`` px). Returns (linear, shift, kept
    (N,) bool)."""
    keep = np.ones(len(src), dtype=bool)
    linear, shift = similarity(src, dst)
    for _ in range(3):
        if len(src) < 3:
            break
        residual = np.linalg.norm(dst - (src @ linear.T + shift), axis=1)
        limit = max(3.0 * float(np.median(residual[keep])), 0.02 * size, 1.0)
        again = residual <= limit
        if again.sum() < 2 or (again == keep).all():
            break
        keep = again
        linear, shift = similarity(src[keep], dst[keep])
    return linear, shift, keep


def _mean(points: np.ndarray, group: tuple[int, ...]) -> np.ndarray:
    return points[list(group)].mean(axis=0)


def body_size(landmarks: np.ndarray) -> float:
    """A body's size in px: its shoulder width, or its torso's length if that is longer."""
    shoulders = float(np.linalg.norm(landmarks[11] - landmarks[12]))
    torso = float(np.linalg.norm(_mean(landmarks, (11, 12)) - _mean(landmarks, (23, 24))))
    return max(shoulders, torso, 1.0)


# --------------------------------------------------------------------------- observing

def _jittered(roi: Roi, dx: float, dy: float, scale: float, turn: float) -> Roi:
    return Roi(roi.cx + dx * roi.width, roi.cy + dy * roi.height, roi.width * scale, roi.height * scale,
               roi.rotation + turn)


def observe(estimator: object, rgb8: np.ndarray, roi: Roi, with_mask: bool = False) -> Observation:
    """The person in ``roi`` of an (H, W, 3) uint8 sRGB frame: each landmark the median over the
    crops of ``JITTERS`` (one model's answer moves by a few px with the crop; the median of nine
    moves by about half as much)."""
    poses = [estimator.landmarks(rgb8, _jittered(roi, *j)) for j in JITTERS]  # type: ignore[attr-defined]
    return Observation(np.median([p.landmarks[:, :2] for p in poses], axis=0).astype(np.float64),
                       np.median([p.visibility for p in poses], axis=0),
                       float(np.median([p.presence for p in poses])), roi,
                       poses[0].mask if with_mask else None)


def leading_person(estimator: object, rgb8: np.ndarray) -> Observation | None:
    """The largest, most present person (mask area x presence) of one frame, observed, with mask."""
    people = estimator.people(rgb8)  # type: ignore[attr-defined]
    if not people:
        return None
    best = max(people, key=lambda p: float(p.mask.sum()) * p.presence)
    found = observe(estimator, rgb8, best.roi, with_mask=True)
    return found if found.presence >= MIN_PRESENCE else None


def usable(observation: Observation, width: int, height: int) -> np.ndarray:
    """(33,) bool: landmarks the model calls visible and that lie on the frame (one outside it is
    the model's guess of an unseen body)."""
    x, y = observation.landmarks[:, 0], observation.landmarks[:, 1]
    inside = (x >= 0) & (x <= width) & (y >= 0) & (y <= height)
    return (observation.visibility >= MIN_VISIBILITY) & inside


def _carried(roi: Roi, linear: np.ndarray, shift: np.ndarray) -> Roi:
    """``roi`` moved by the similarity (linear, shift)."""
    centre = linear @ np.array([roi.cx, roi.cy]) + shift
    scale = math.sqrt(max(abs(float(np.linalg.det(linear))), 1e-9))
    turn = math.atan2(float(linear[1, 0]), float(linear[0, 0]))
    return Roi(float(centre[0]), float(centre[1]), roi.width * scale, roi.height * scale, roi.rotation + turn)


def track_actor(estimator: object, frames: Callable[[int], np.ndarray], first: int, last: int, reference: int,
                cancelled: Callable[[], bool] = lambda: False) -> dict[int, Observation | None]:
    """The actor on every frame first..last (``frames(n)``: (H, W, 3) uint8 sRGB), None where not
    found. The reference frame's leading person is the actor; each frame's crop is carried from
    its neighbour's (towards the reference) by the similarity of their landmarks; where the
    person is lost there, the detector looks again and the person nearest the crop is taken."""
    start_rgb8 = frames(reference)
    height, width = start_rgb8.shape[:2]
    start = leading_person(estimator, start_rgb8)
    found: dict[int, Observation | None] = {reference: start}
    if start is None:
        return found
    keep_ref = usable(start, width, height)
    size = body_size(start.landmarks)
    for step in (1, -1):
        previous = start
        frame = reference + step
        while first <= frame <= last:
            if cancelled():
                from engine.errors import CancelledError
                raise CancelledError("cancelled while following the actor's pose; nothing was written")
            rgb8 = frames(frame)
            both = keep_ref & usable(previous, width, height)
            if both.sum() >= 2:
                linear, shift, _ = robust_similarity(start.landmarks[both], previous.landmarks[both], size)
                roi = _carried(start.roi, linear, shift)
            else:
                roi = previous.roi
            now = observe(estimator, rgb8, roi)
            if now.presence < MIN_PRESENCE:
                rois = estimator.detect(rgb8)  # type: ignore[attr-defined]
                near = min(rois, key=lambda r: math.hypot(r.cx - roi.cx, r.cy - roi.cy), default=None)
                now = observe(estimator, rgb8, near) if near is not None else now
            if now.presence >= MIN_PRESENCE:
                found[frame] = previous = now
            else:
                found[frame] = None
            frame += step
    return found


# --------------------------------------------------------------------------- steadying

def _hampel(track: np.ndarray, seen: np.ndarray, floor: float, half: int = 2) -> np.ndarray:
    """(F,) bool: the seen values of one landmark's (F, 2) track that are not one-frame jumps
    (farther from the median of the seen values within ``half`` frames than three robust spreads
    of the track and ``floor`` px)."""
    index = np.flatnonzero(seen)
    if len(index) < 3:
        return seen.copy()
    residual = np.zeros(len(index))
    for k, t in enumerate(index):
        window = index[max(0, k - half): k + half + 1]
        residual[k] = float(np.linalg.norm(track[t] - np.median(track[window], axis=0)))
    limit = max(3.0 * 1.4826 * float(np.median(residual)), floor)
    kept = seen.copy()
    kept[index[residual > limit]] = False
    return kept


def _hold(track: np.ndarray, kept: np.ndarray, start: int) -> np.ndarray:
    """(F, 2) track with each dropped value replaced by the last kept one, outwards from index
    ``start`` (the reference frame; before a first kept value, the reference's)."""
    out = track.copy()
    for order in (range(start + 1, len(track)), range(start - 1, -1, -1)):
        last = out[start]
        for t in order:
            if kept[t]:
                last = out[t]
            else:
                out[t] = last
    return out


def steady_tracks(observed: dict[int, Observation | None], first: int, last: int, reference: int, width: int,
                  height: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """The actor's steadied landmarks: ((F, 33, 2) float64 on frames first..last, (33,) bool the
    landmarks usable on the reference frame, the ones that may drive). Frames without the actor
    hold the last pose."""
    from engine.analysis.smoothing import OneEuroFilter

    start = observed[reference]
    assert start is not None
    count = last - first + 1
    tracks = np.repeat(start.landmarks[None], count, axis=0)
    seen = np.zeros((count, len(start.landmarks)), dtype=bool)
    for frame, found in observed.items():
        if found is not None:
            tracks[frame - first] = found.landmarks
            seen[frame - first] = usable(found, width, height)
    size = body_size(start.landmarks)
    ref = reference - first
    for j in range(tracks.shape[1]):
        kept = _hampel(tracks[:, j], seen[:, j], 0.03 * size)
        kept[ref] = True   # the reference pose is the origin of every move
        tracks[:, j] = _hold(tracks[:, j], kept, ref)
    # One Euro forwards and backwards, averaged: each alone lags behind a move by a frame or
    # so; their lags are opposite.
    ahead, behind = OneEuroFilter(fps), OneEuroFilter(fps)
    forwards = np.array([ahead(tracks[t], size) for t in range(count)])
    backwards = np.array([behind(tracks[t], size) for t in range(count - 1, -1, -1)])[::-1]
    return 0.5 * (forwards + backwards), seen[ref]


# --------------------------------------------------------------------------- bones

def _limb_linear(ref_a: np.ndarray, ref_b: np.ndarray, now_a: np.ndarray, now_b: np.ndarray, scale: float,
                 along: np.ndarray) -> np.ndarray:
    """(2, 2): a limb's turn (from its segment ref_a->ref_b to now_a->now_b), the body's ``scale``
    and a stretch along the (unit) direction ``along`` of the limb being moved, for the change of
    length the scale does not explain (the limb turning towards or away from the camera)."""
    before, after = ref_b - ref_a, now_b - now_a
    turn = math.atan2(before[0] * after[1] - before[1] * after[0], float(before @ after))
    ratio = float(np.linalg.norm(after)) / max(float(np.linalg.norm(before)), 1e-6)
    stretch = float(np.clip(ratio / max(scale, 1e-6), 0.3, 2.0))
    c, s = math.cos(turn), math.sin(turn)
    return scale * np.array([[c, -s], [s, c]]) @ (np.eye(2) + (stretch - 1.0) * np.outer(along, along))


Move = tuple[np.ndarray, np.ndarray]   # (linear (2, 2), shift (2,)): p -> linear @ p + shift


def _root_points(drives: np.ndarray, bones: tuple[Bone, ...] = BONES) -> list[int]:
    """The landmarks the root bone's move is fitted on: its own that drive, else all that drive."""
    fit = [j for j in bones[0].fit if drives[j]]
    return fit if len(fit) >= 2 else [int(j) for j in np.flatnonzero(drives)]


def actor_moves(ref: np.ndarray, now: np.ndarray, drives: np.ndarray, bones: tuple[Bone, ...] = BONES
                ) -> dict[str, Move | None]:
    """Each bone's move on the actor, from its landmarks: name -> Move in the actor's pixels, None
    where its landmarks do not drive (it then moves with its parent). ``ref``/``now``: (33, 2)
    landmarks on the reference frame and now; ``drives`` (33,) bool the landmarks to use."""
    size = body_size(ref)
    moves: dict[str, Move | None] = {}
    root_scale = 1.0
    for bone in bones:
        fit = _root_points(drives, bones) if bone.parent is None else [j for j in bone.fit if drives[j]]
        if bone.parent is None and len(fit) < 2:
            moves[bone.name] = (np.eye(2), np.zeros(2))
        elif bone.parent is not None and len(fit) < min(len(bone.fit), 3):
            moves[bone.name] = None
        elif bone.parent is not None and len(bone.fit) == 2:
            a, b = fit
            direction = ref[b] - ref[a]
            linear = _limb_linear(ref[a], ref[b], now[a], now[b], root_scale,
                                  direction / max(float(np.linalg.norm(direction)), 1e-6))
            moves[bone.name] = (linear, now[a] - linear @ ref[a])
        else:
            linear, shift, _kept = robust_similarity(ref[fit], now[fit], size)
            moves[bone.name] = (linear, shift)
            if bone.parent is None:
                root_scale = math.sqrt(max(float(np.linalg.det(linear)), 1e-9))
    return moves


def transfer_moves(moves: dict[str, Move | None], actor_ref: np.ndarray, target: np.ndarray, drives: np.ndarray,
                   to_target: np.ndarray, bones: tuple[Bone, ...] = BONES) -> dict[str, Move]:
    """The actor's bone moves (``actor_moves``) given to the target's skeleton (``target`` (33, 2)
    landmarks): name -> Move in the target's pixels. ``to_target`` (2, 2): the linear part of the
    similarity from the actor's body to the target's. Chained down the skeleton (forward
    kinematics): a bone turns about the target's own joint, wherever its parent took that joint,
    so a target of other proportions keeps its limbs attached; the root's anchor moves as the
    actor's did, mapped by ``to_target``. With ``target`` = ``actor_ref`` and ``to_target`` the
    identity: the actor's own chained moves."""
    turn = to_target / math.sqrt(max(abs(float(np.linalg.det(to_target))), 1e-12))
    out: dict[str, Move] = {}
    for bone in bones:
        move = moves.get(bone.name)
        if bone.parent is None:
            linear, shift = move if move is not None else (np.eye(2), np.zeros(2))
            points = _root_points(drives, bones)
            centre = actor_ref[points].mean(axis=0)
            anchor = target[points].mean(axis=0)
            mapped = turn @ linear @ turn.T    # the same move seen in the target's orientation
            out[bone.name] = (mapped, anchor + to_target @ (linear @ centre + shift - centre) - mapped @ anchor)
            continue
        parent_linear, parent_shift = out[bone.parent]
        linear = parent_linear if move is None else turn @ move[0] @ turn.T
        pivot = _mean(target, bone.pivot or bone.start)
        out[bone.name] = (linear, parent_linear @ pivot + parent_shift - linear @ pivot)
    return out


# --------------------------------------------------------------------------- skinning

def skin_weights(points: np.ndarray, segments: np.ndarray, sigma: float) -> np.ndarray:
    """(N, B) weights, rows summing to 1, of (N, 2) ``points`` to (B, 2, 2) ``segments``: the
    inverse cube of each point's squared distance to each segment, softened by ``sigma`` px
    (1 / (d^2 / sigma^2 + 1)^3), normalised. A point on a bone three sigma from the next takes
    99.9 % of its own (a bone's move leaks little onto its neighbours); between two bones the
    weights change over a width that grows with the distance from them, so the blend stays
    smooth far from the body (a Gaussian of the distance would switch ever more sharply there
    and tear the field)."""
    a, b = segments[None, :, 0], segments[None, :, 1]
    ab = b - a
    t = np.clip(((points[:, None] - a) * ab).sum(-1) / np.maximum((ab ** 2).sum(-1), 1e-9), 0.0, 1.0)
    d2 = ((points[:, None] - (a + t[..., None] * ab)) ** 2).sum(-1)
    w = 1.0 / (d2 / sigma ** 2 + 1.0) ** 3
    return w / w.sum(axis=1, keepdims=True)


def _apply(linear: np.ndarray, shift: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, B, 2): each of the (N, 2) points moved by each of the B moves ((B, 2, 2), (B, 2))."""
    return np.einsum("bij,nj->nbi", linear, points) + shift[None]


def skinned_source(points: np.ndarray, segments: np.ndarray, linear: np.ndarray, shift: np.ndarray, sigma: float,
                   steps: int = 8) -> np.ndarray:
    """(N, 2) where on the target each output point (N, 2) comes from, under the linear-blend
    skinning x -> sum_b w_b(x) (linear_b x + shift_b) with weights ``skin_weights(x, segments)``.
    Start: each bone's own inverse, blended by the weights to the bones where they are now; then
    Newton steps (the Jacobian taken as the blend of the bones' linear parts)."""
    moved = np.einsum("bij,bkj->bki", linear, segments) + shift[:, None]   # (B, 2, 2): the segments now
    inverse = np.linalg.inv(linear)
    w = skin_weights(points, moved, sigma)
    x = (w[..., None] * np.einsum("bij,nbj->nbi", inverse, points[:, None] - shift[None])).sum(axis=1)
    for _ in range(steps):
        w = skin_weights(x, segments, sigma)
        forward = (w[..., None] * _apply(linear, shift, x)).sum(axis=1)
        jacobian = np.einsum("nb,bij->nij", w, linear)
        x = x + np.linalg.solve(jacobian, (points - forward)[..., None])[..., 0]
    return x


def skinning_map(segments: np.ndarray, linear: np.ndarray, shift: np.ndarray, width: int, height: int, sigma: float
                 ) -> np.ndarray:
    """(H, W, 2) float32 flow: for each output pixel, the offset (x, y) px to the target pixel it
    shows (``engine.flow.warp`` convention). Solved on a grid a quarter of ``sigma`` apart (the
    field is smooth on that scale) and resized."""
    import cv2

    step = max(1, int(sigma // 4))
    gw, gh = (width + step - 1) // step, (height + step - 1) // step
    gx, gy = np.meshgrid((np.arange(gw) + 0.5) * step, (np.arange(gh) + 0.5) * step)
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    offset = np.empty_like(grid)
    for s in range(0, len(grid), 65536):   # bounded memory at 4K
        offset[s:s + 65536] = skinned_source(grid[s:s + 65536], segments, linear, shift, sigma) - grid[s:s + 65536]
    field = offset.reshape(gh, gw, 2).astype(np.float32)
    return field if step == 1 else cv2.resize(field, (width, height), interpolation=cv2.INTER_LINEAR)


# --------------------------------------------------------------------------- refining on the pixels

def _fit_bones(reference: torch.Tensor, now: torch.Tensor, segments: np.ndarray, names: tuple[str, ...],
               moves: dict[str, Move], person: np.ndarray, sigma: float, size: float
               ) -> dict[str, tuple[Move, float] | None]:
    """One guess of the actor's bone moves checked on the pixels: the reference frame warped by
    the skinning of ``moves`` (the guess of this frame), the optical flow (OpenCV DIS) from this
    frame to it measures what the guess missed, and each bone's pixels (inside ``person``, mostly
    its own by the skinning weights, 80 %) are fitted with a robust similarity. Returns name ->
    (Move, the median distance in px of its kept pixels from the fit), or None where the bone
    has too few pixels of its own to tell (under 50: a hand behind a prop, a limb out of frame)."""
    import cv2

    from engine.flow import opencv_dis_flow, warp

    height, width = person.shape
    linear = np.array([moves[n][0] for n in names])
    shift = np.array([moves[n][1] for n in names])
    field = skinning_map(segments, linear, shift, width, height, sigma)    # now -> reference
    with torch.no_grad():
        guess = warp(reference, torch.from_numpy(field).to(reference.device).permute(2, 0, 1)[None].contiguous())
        missed = opencv_dis_flow(now, guess)[0].permute(1, 2, 0).cpu().numpy()   # now(y) ~ guess(y + missed)
    step = max(1, int(math.sqrt(height * width / 40000)))   # ~40k samples are plenty for a few similarities
    ys, xs = np.mgrid[step // 2:height:step, step // 2:width:step]
    at = np.stack([xs, ys], axis=-1).astype(np.float32) + missed[ys, xs]          # (h, w, 2) pixel indices
    source = at + cv2.remap(field, at[..., 0], at[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = cv2.remap(person.astype(np.float32), source[..., 0], source[..., 1], cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0.0).ravel()
    here = np.stack([xs.ravel(), ys.ravel()], axis=1) + 0.5   # pixel centres, as the landmarks
    source = source.reshape(-1, 2).astype(np.float64) + 0.5
    weights = skin_weights(source, segments, sigma)
    fitted: dict[str, tuple[Move, float] | None] = {}
    for k, name in enumerate(names):
        pick = (weights[:, k] > 0.8) & (inside > 0.8)   # its core: near a joint the next bone shows through
        if pick.sum() < 50:
            fitted[name] = None
            continue
        fit_linear, fit_shift, kept = robust_similarity(source[pick], here[pick], size)
        if kept.mean() < 0.5:
            continue
        residual = np.linalg.norm(here[pick][kept] - (source[pick][kept] @ fit_linear.T + fit_shift), axis=1)
        fitted[name] = ((fit_linear, fit_shift), float(np.median(residual)))
    return fitted


def refine_moves(reference: torch.Tensor, now: torch.Tensor, segments: np.ndarray, names: tuple[str, ...],
                 moves: dict[str, Move], person: np.ndarray, sigma: float, size: float
                 ) -> dict[str, Move | None]:
    """The actor's bone moves measured on the actor's own pixels, where they agree.

    ``reference``/``now``: (1, 3, H, W) float32 ACEScg frames of the take; ``segments`` (B, 2, 2)
    the actor's bones (``names``, the root first) on the reference frame; ``moves`` their chained
    moves from the landmarks (actor pixels); ``person`` (H, W) the actor's mask on the reference
    frame. Two guesses are checked on the pixels (``_fit_bones``): the landmarks' moves (and
    then the fits that gave, once more), and the whole body moving as its root was measured
    (right where a limb's landmarks are the model's guess: a hand out of frame, an arm behind a
    prop); each bone takes the fit that matches its pixels better, if it matches them within a
    hundredth of the body's size (2 px at least). A bone that matches neither keeps the
    landmarks' move (it moved in a way a similarity of its pixels does not follow: blur,
    cloth); one with too few pixels of its own to tell moves with its parent (None), its
    landmarks being the model's guess of something it barely sees.
    Returns name -> Move or None.
    """
    first = _fit_bones(reference, now, segments, names, moves, person, sigma, size)
    # Once more from the first fits: the flow is exact only for small misses (it smooths a large
    # one across the limb's edge, into the still ground).
    again = {name: first[name][0] if first.get(name) is not None else moves[name] for name in names}
    candidates = [first, _fit_bones(reference, now, segments, names, again, person, sigma, size)]
    root = first[names[0]]
    if root is not None:
        rigid = {name: root[0] for name in names}
        candidates.append(_fit_bones(reference, now, segments, names, rigid, person, sigma, size))
    limit = max(2.0, 0.01 * size)
    refined: dict[str, Move | None] = {}
    for k, name in enumerate(names):
        options = [c[name] for c in candidates if c.get(name) is not None]
        if options:
            move, residual = min(options, key=lambda option: option[1])
            if residual <= limit:
                refined[name] = move
        elif k > 0 and all(name in c for c in candidates):
            refined[name] = None
    return refined


# --------------------------------------------------------------------------- the ground behind

def fill_behind(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(H, W, C) float32 ``image`` with the pixels where ``known`` (H, W) is 0 filled from their
    surroundings (push-pull: averages of the known pixels on ever coarser levels, pulled back
    up). Known pixels are kept."""
    import cv2

    levels = [(image * known[..., None], known.astype(np.float32))]
    while min(levels[-1][1].shape) > 4:
        colour, weight = levels[-1]
        size = ((colour.shape[1] + 1) // 2, (colour.shape[0] + 1) // 2)
        levels.append((cv2.resize(colour, size, interpolation=cv2.INTER_AREA).reshape(size[1], size[0], -1),
                       cv2.resize(weight, size, interpolation=cv2.INTER_AREA)))
    colour, weight = levels[-1]
    filled = colour.sum(axis=(0, 1)) / max(float(weight.sum()), 1e-6) * np.ones_like(colour)
    filled = np.where(weight[..., None] > 1e-6, colour / np.maximum(weight, 1e-6)[..., None], filled)
    for colour, weight in reversed(levels[:-1]):
        up = cv2.resize(filled, (colour.shape[1], colour.shape[0]),
                        interpolation=cv2.INTER_LINEAR).reshape(colour.shape)
        w = np.clip(weight, 0.0, 1.0)[..., None]
        filled = colour / np.maximum(weight, 1e-6)[..., None] * w + up * (1.0 - w)
    return np.where(known[..., None] > 0.5, image, filled).astype(np.float32)


# --------------------------------------------------------------------------- the drive

class BodyDrive:
    """The character ``target`` (H, W, 3) float32 ACEScg driven by the take's actor.

    ``character``: the target's pose and person mask; ``actor`` (F, 33, 2) the actor's steadied
    landmarks on frames ``first``.. (``steady_tracks``), ``drives`` (33,) the ones to use;
    ``start``: the actor as observed on the reference frame (its visibility and mask);
    ``reference_frame`` (H, W, 3) ACEScg the take's reference frame, for refining the bones'
    moves on the actor's pixels (None: landmarks alone); ``holds``: frame -> the frame whose pose
    it holds (the actor not found there), read through ``source`` (frame -> (H, W, C) ACEScg)."""

    def __init__(self, target: np.ndarray, character: Observation, actor: np.ndarray, drives: np.ndarray,
                 first: int, reference: int, start: Observation, reference_frame: np.ndarray | None = None,
                 device: str = "cpu", holds: dict[int, int] | None = None,
                 source: Callable[[int], np.ndarray] | None = None) -> None:
        from engine.encoding import acescct_encode
        from engine.flow import local_range

        self.target = np.ascontiguousarray(target, dtype=np.float32)
        self.character = character
        self.actor = actor
        self.first, self.reference = first, reference
        self.device = torch.device(device)
        self.holds = holds or {}
        self.source = source
        height, width = target.shape[:2]
        self.drives = drives
        common = np.flatnonzero(drives & usable(character, width, height))
        if len(common) < 2:
            from engine.errors import JobError
            raise JobError("the motion_transfer target and the actor share too few visible body landmarks",
                           path="$.transform.target",
                           hint="the body mode needs the same parts of the body (head, shoulders) seen on both")
        self.to_target, _shift = similarity(self.actor[reference - first][common], character.landmarks[common])
        # A body's bones with both ends visible carry its pixels; the others are left out of the
        # skinning (a hidden forearm's segment is a guess).
        self.bones, self.segments = _skeleton(character)
        self.sigma = 0.15 * body_size(character.landmarks)
        actor_ref = Observation(self.actor[reference - first], start.visibility, start.presence, start.roi)
        self.actor_bones, self.actor_segments = _skeleton(actor_ref)
        self.actor_sigma = 0.15 * body_size(actor_ref.landmarks)
        self.actor_mask = np.clip(np.asarray(start.mask, dtype=np.float32), 0.0, 1.0) if start.mask is not None \
            else None
        self._reference = None if reference_frame is None else self._tensor(reference_frame[..., :3])
        mask = np.clip(np.asarray(character.mask, dtype=np.float32), 0.0, 1.0)
        with torch.no_grad():
            self._code = acescct_encode(self._tensor(self.target))
            self._bounds = local_range(self._code)
            self._mask = torch.from_numpy(mask).to(self.device)[None, None]
            # The ground behind the character: the target where it shows no one, a smooth fill
            # where it shows the character. The fill reads only ground clear of the character
            # (the mask's soft edge, grown by 3 % of the body) and covers all of that edge: filled
            # from the edge's own pixels, the ground a character walks away from kept a dark
            # outline of where it stood.
            import cv2

            code = self._code[0].permute(1, 2, 0).cpu().numpy()
            grow = max(2, int(round(0.03 * body_size(character.landmarks))))
            hole = cv2.dilate((mask > 0.05).astype(np.uint8), np.ones((3, 3), np.uint8), iterations=grow)
            ground = fill_behind(code, (hole == 0).astype(np.float32))
            behind = np.maximum(cv2.GaussianBlur(hole.astype(np.float32), (0, 0), grow / 2.0),
                                (mask > 0.05).astype(np.float32))[..., None]
            self._ground = self._tensor(code + np.clip(behind, 0.0, 1.0) * (ground - code))

    def _tensor(self, image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).to(self.device).permute(2, 0, 1)[None]

    @classmethod
    def from_context(cls, transform: object, context: object, reference: int) -> "BodyDrive":
        from engine.analysis.frames import display_rgb8
        from engine.analysis.pose import PoseEstimator
        from engine.errors import JobError

        estimator = PoseEstimator(max_people=4)
        colour = context.colour  # type: ignore[attr-defined]
        target = transform._key(0)[0][0].permute(1, 2, 0).cpu().numpy()  # type: ignore[attr-defined]
        character = leading_person(estimator, display_rgb8(colour, target))
        if character is None:
            raise JobError("no person found in the motion_transfer target", path="$.transform.target",
                           hint="the body mode needs a character the pose detector can find: a person-like body, "
                                "head and shoulders at least, standing in the picture")
        first, last = context.frames  # type: ignore[attr-defined]
        source = context.source  # type: ignore[attr-defined]
        observed = track_actor(estimator, lambda n: display_rgb8(colour, source(n)), first, last, reference,
                               context.cancelled)  # type: ignore[attr-defined]
        start = observed[reference]
        if start is None:
            raise JobError(f"no person found on the reference frame {reference} of the take",
                           path="$.transform.reference",
                           hint="pick a frame where the actor is clearly in view, head and shoulders at least")
        width, height = context.size  # type: ignore[attr-defined]
        plate = getattr(context, "plate", None)
        fps = float(plate.fps) if plate is not None and plate.fps else 24.0
        actor, drives = steady_tracks(observed, first, last, reference, width, height, fps)
        return cls(target, character, actor, drives, first, reference, start, source(reference),
                   context.device, _holds(observed, first, last, reference), source)  # type: ignore[attr-defined]

    def moves(self, frame: int, image: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The target's skinned bones' moves on ``frame``: ((B, 2, 2) linear, (B, 2) shift), target
        pixels. ``image``: the take's frame (H, W, C) ACEScg, to refine the moves on its pixels.
        A frame without the actor holds the pose of the last frame that had them, refined there."""
        shown = self.holds.get(frame, frame)
        if shown != frame:
            image = self.source(shown) if self.source is not None else None
        ref, now = self.actor[self.reference - self.first], self.actor[shown - self.first]
        moves = actor_moves(ref, now, self.drives)
        if image is not None and self._reference is not None and self.actor_mask is not None:
            own = transfer_moves(moves, ref, ref, self.drives, np.eye(2))
            names = tuple(b.name for b in self.actor_bones)
            moves.update(refine_moves(self._reference, self._tensor(image[..., :3]), self.actor_segments, names, own,
                                      self.actor_mask, self.actor_sigma, body_size(ref)))
        target = transfer_moves(moves, ref, self.character.landmarks, self.drives, self.to_target)
        return (np.array([target[b.name][0] for b in self.bones]), np.array([target[b.name][1] for b in self.bones]))

    def apply(self, frame: int, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) float32 scene-linear ACEScg: the target with its character in the actor's pose
        on ``frame`` (``image``: the take's frame there, (H, W, C) ACEScg)."""
        from engine.encoding import acescct_decode
        from engine.flow import warp, warp_sharp

        if frame == self.reference:
            return self.target.copy()
        height, width = image.shape[:2]
        linear, shift = self.moves(frame, image)
        field = skinning_map(self.segments, linear, shift, width, height, self.sigma)
        with torch.no_grad():
            flow = torch.from_numpy(field).to(self.device).permute(2, 0, 1)[None].contiguous()
            character = warp_sharp(self._code, flow, self._bounds)
            mask = warp(self._mask, flow).clamp(0.0, 1.0)
            # The matte composite in linear light, as a compositor's over.
            out = mask * acescct_decode(character) + (1.0 - mask) * acescct_decode(self._ground)
        return out[0].permute(1, 2, 0).cpu().numpy()


def _holds(observed: dict[int, Observation | None], first: int, last: int, reference: int) -> dict[int, int]:
    """frame -> the frame whose pose it holds, for the frames without the actor: the nearest one
    towards the reference that had them."""
    holds: dict[int, int] = {}
    for order in (range(reference + 1, last + 1), range(reference - 1, first - 1, -1)):
        last_seen = reference
        for frame in order:
            if observed.get(frame) is not None:
                last_seen = frame
            else:
                holds[frame] = last_seen
    return holds


def _skeleton(body: Observation) -> tuple[tuple[Bone, ...], np.ndarray]:
    """The bones of ``body``: the torso (the root, its hips guessed if need be) and each other one
    with both ends visible; and their (B, 2, 2) segments in its pixels."""
    seen = body.visibility >= MIN_VISIBILITY
    bones = BONES[:1] + tuple(b for b in BONES[1:] if all(seen[j] for j in b.start + b.end))
    return bones, np.array([[_mean(body.landmarks, b.start), _mean(body.landmarks, b.end)] for b in bones])
