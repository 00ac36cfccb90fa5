"""Up to eight faces followed through a plate, each with an identity that stays put.

Per frame (``FaceTracker.update``):

1. every face seen in the previous frame is looked for again with a crop made
   from its previous landmarks (MediaPipe's tracking loop): the identity follows
   the face itself, so faces that move, turn or pass near each other keep it;
2. the detector runs (every ``detect_interval`` frames, and on every frame while
   a face is missing) and each face not already followed gets landmarks;
3. such a new face is matched to a *lost* identity (occluded, or gone out of
   frame) by where that face was heading and by its geometry (a pose-normalised
   signature of its landmarks); failing a match it gets a new identity;
4. the landmarks are smoothed per identity with a One Euro filter (``smoothing``)
   which starts afresh when a face comes back.

Images are (H, W, 3) uint8 sRGB; coordinates are frame pixels (see ``frames``).
Identities are small integers from 1 in order of first appearance.

For the engine's face lock: ``track_faces`` gives a ``FaceTracks`` whose
``faces_at(frame)`` lists ``TrackedFace`` (``id``, ``landmarks`` (468, 3)
smoothed, ``box``, ``head_pose``, ``confidence``) on absolute frame numbers.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from engine.analysis.faces import (KEY_LANDMARKS, FaceDetector, FaceLandmarker, FaceObservation, head_pose,
                                   roi_from_detection, roi_from_landmarks)
from engine.analysis.smoothing import OneEuroFilter
from engine.analysis.ssd import iou

# Landmarks whose pose-normalised layout makes a face's geometric signature.
_SIGNATURE_POINTS = (33, 133, 362, 263, 1, 61, 291, 152, 10, 234, 454, 168, 6, 197, 195, 5, 4, 0, 17, 13, 14)


@dataclass
class TrackedFace:
    """One identified face in one frame. ``landmarks`` (468, 3) float32 frame pixels (smoothed
    unless the tracker was built with ``smoothing=False``); ``raw_landmarks`` as the model gave them."""

    id: int
    frame: int
    landmarks: np.ndarray
    raw_landmarks: np.ndarray
    box: np.ndarray
    confidence: float
    head_pose: object

    def key_points(self) -> dict[str, tuple[float, float]]:
        return {name: (float(self.landmarks[i, 0]), float(self.landmarks[i, 1])) for name, i in KEY_LANDMARKS.items()}


@dataclass
class _Track:
    id: int
    last: FaceObservation
    last_frame: int
    velocity: np.ndarray  # px/frame of the face centre
    signature: np.ndarray
    seen: int
    filter: OneEuroFilter


@dataclass
class FaceTracks:
    """Every identified face of a plate: ``frames[frame] -> list[TrackedFace]`` on absolute frame numbers."""

    width: int
    height: int
    fps: float
    frames: dict[int, list[TrackedFace]] = field(default_factory=dict)

    def faces_at(self, frame: int) -> list[TrackedFace]:
        return self.frames.get(frame, [])

    def ids(self) -> list[int]:
        return sorted({face.id for faces in self.frames.values() for face in faces})

    def track(self, face_id: int) -> dict[int, TrackedFace]:
        """One identity's faces, by frame."""
        return {frame: face for frame, faces in sorted(self.frames.items()) for face in faces if face.id == face_id}


def signature(landmarks: np.ndarray) -> np.ndarray:
    """A face's geometry with pose, position and size taken out: selected landmarks rotated into
    the face's own axes and divided by the distance between the outer eye corners."""
    pose = head_pose(landmarks)
    points = landmarks[list(_SIGNATURE_POINTS)].astype(np.float64)
    centre = points.mean(axis=0)
    local = (points - centre) @ pose.matrix
    eyes = np.linalg.norm(landmarks[KEY_LANDMARKS["left_eye_outer"]] - landmarks[KEY_LANDMARKS["right_eye_outer"]])
    return (local / max(float(eyes), 1e-6)).ravel()


def _centre(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def _size(box: np.ndarray) -> float:
    return float(max(box[2] - box[0], box[3] - box[1]))


class FaceTracker:
    """Follows up to ``max_faces`` faces frame by frame (call ``update`` with consecutive frames).

    ``fps`` drives the smoothing; ``lost_frames``: how long a lost identity can be
    re-acquired (default 10 s); ``min_presence``: the landmark model's face
    presence below which a face counts as lost.
    """

    def __init__(self, fps: float = 24.0, *, max_faces: int = 8, detect_interval: int = 4, smoothing: bool = True,
                 min_presence: float = 0.5, min_detection_score: float = 0.5, lost_frames: int | None = None,
                 threads: int | None = None, detector: FaceDetector | None = None,
                 landmarker: FaceLandmarker | None = None) -> None:
        self.fps = fps
        self.max_faces = max_faces
        self.detect_interval = max(1, detect_interval)
        self.smoothing = smoothing
        self.min_presence = min_presence
        self.lost_frames = lost_frames if lost_frames is not None else int(round(10 * fps))
        self.detector = detector or FaceDetector(min_detection_score, threads)
        self.landmarker = landmarker or FaceLandmarker(threads)
        self._active: list[_Track] = []
        self._lost: list[_Track] = []
        self._next_id = 1
        self._frames_since_detection = 10 ** 9

    def _new_filter(self) -> OneEuroFilter:
        return OneEuroFilter(self.fps)

    def _follow(self, image: np.ndarray, frame: int) -> list[tuple[_Track, FaceObservation]]:
        kept: list[tuple[_Track, FaceObservation]] = []
        for track in self._active:
            observation = self._relocate(image, track)
            size = _size(observation.box)
            if observation.confidence < self.min_presence or size < 8:
                self._lose(track)
                continue
            kept.append((track, observation))
        # Two identities that have slid onto one face: the older one keeps it.
        kept.sort(key=lambda pair: pair[0].id)
        unique: list[tuple[_Track, FaceObservation]] = []
        for track, observation in kept:
            if any(iou(observation.box, other.box) > 0.5 for _t, other in unique):
                self._lose(track)
                continue
            unique.append((track, observation))
        return unique

    def _relocate(self, image: np.ndarray, track: _Track) -> FaceObservation:
        """The face again, from a crop placed where it is heading. The landmark model pulls
        towards the centre of an off-centre crop, so while the crop made from the new
        landmarks sits noticeably elsewhere (fast motion), look again from there."""
        predicted = track.last.landmarks.copy()
        # Only real motion moves the crop: following the noise of a still face's
        # velocity would add jitter.
        if float(np.linalg.norm(track.velocity)) > 0.02 * _size(track.last.box):
            predicted[:, :2] += track.velocity
        roi = roi_from_landmarks(predicted)
        observation = self.landmarker.observe(image, roi)
        for _ in range(2):
            again = roi_from_landmarks(observation.landmarks)
            moved = math.hypot(again.cx - roi.cx, again.cy - roi.cy)
            if observation.confidence < self.min_presence or moved < 0.02 * again.width:
                break
            roi = again
            observation = self.landmarker.observe(image, roi)
        return observation

    def _lose(self, track: _Track) -> None:
        track.filter.reset()
        self._lost.append(track)

    def _new_faces(self, image: np.ndarray, followed: list[tuple[_Track, FaceObservation]]) -> list[FaceObservation]:
        found: list[FaceObservation] = []
        for detection in self.detector.detect(image):
            if len(followed) + len(found) >= self.max_faces:
                break
            centre = _centre(detection.box)
            taken = [obs.box for _t, obs in followed] + [obs.box for obs in found]
            if any(iou(detection.box, box) > 0.2 or (box[0] <= centre[0] <= box[2] and box[1] <= centre[1] <= box[3])
                   for box in taken):
                continue
            first = self.landmarker.observe(image, roi_from_detection(detection), detection.score)
            if first.confidence < self.min_presence:
                continue
            refined = self.landmarker.observe(image, roi_from_landmarks(first.landmarks), detection.score)
            observation = refined if refined.confidence >= self.min_presence else first
            if any(iou(observation.box, box) > 0.3 for box in taken):
                continue
            found.append(observation)
        return found

    def _reacquire(self, observation: FaceObservation, frame: int) -> _Track | None:
        """The lost identity this new face most likely is, or None."""
        best: tuple[float, _Track] | None = None
        shape = signature(observation.landmarks)
        size = _size(observation.box)
        for track in self._lost:
            gap = frame - track.last_frame
            predicted = _centre(track.last.box) + track.velocity * min(gap, 12)
            # Position in face sizes, allowing more room the longer it was gone.
            distance = float(np.linalg.norm(_centre(observation.box) - predicted)) / max(size, 1.0)
            slack = 1.0 + 0.25 * math.sqrt(gap)
            geometry = float(np.sqrt(np.mean((shape - track.signature) ** 2)))
            scale_change = abs(math.log(max(size, 1.0) / max(_size(track.last.box), 1.0)))
            cost = distance / slack + geometry / 0.05 + scale_change / 0.5
            if distance > 4.0 * slack or geometry > 0.12:
                continue
            if best is None or cost < best[0]:
                best = (cost, track)
        return best[1] if best else None

    def _emit(self, track: _Track, observation: FaceObservation, frame: int) -> TrackedFace:
        raw = observation.landmarks
        if self.smoothing:
            smoothed = track.filter(raw, scale=_size(observation.box)).astype(np.float32)
        else:
            smoothed = raw
        box = np.array([*smoothed[:, :2].min(axis=0), *smoothed[:, :2].max(axis=0)], dtype=np.float64)
        return TrackedFace(track.id, frame, smoothed, raw, box, observation.confidence, head_pose(smoothed))

    def update(self, frame: int, image: np.ndarray) -> list[TrackedFace]:
        """Faces in this (H, W, 3) uint8 sRGB frame, with their identities, sorted by id."""
        followed = self._follow(image, frame)
        self._active = [track for track, _obs in followed]
        self._frames_since_detection += 1
        wants_detection = (self._frames_since_detection >= self.detect_interval or bool(self._lost)
                           or not self._active)
        new: list[FaceObservation] = []
        if wants_detection and len(followed) < self.max_faces:
            new = self._new_faces(image, followed)
            self._frames_since_detection = 0
        out: list[TrackedFace] = []
        for track, observation in followed:
            centre = _centre(observation.box)
            step = centre - _centre(track.last.box)
            track.velocity = 0.3 * track.velocity + 0.7 * step
            track.signature = (track.signature * min(track.seen, 30) + signature(observation.landmarks)) / (
                min(track.seen, 30) + 1)
            track.seen += 1
            track.last, track.last_frame = observation, frame
            out.append(self._emit(track, observation, frame))
        for observation in new:
            track = self._reacquire(observation, frame)
            if track is not None:
                self._lost.remove(track)
                track.velocity = np.zeros(2)
                track.last, track.last_frame = observation, frame
            else:
                track = _Track(self._next_id, observation, frame, np.zeros(2), signature(observation.landmarks), 1,
                               self._new_filter())
                self._next_id += 1
            self._active.append(track)
            out.append(self._emit(track, observation, frame))
        self._lost = [t for t in self._lost if frame - t.last_frame <= self.lost_frames]
        return sorted(out, key=lambda face: face.id)


def track_faces(frames: Iterable[tuple[int, np.ndarray]], fps: float = 24.0, *,
                progress: Callable[[int], None] | None = None, **options: object) -> FaceTracks:
    """Track faces over ``(frame, (H, W, 3) uint8 sRGB)`` pairs in frame order (e.g.
    ``frames.plate_frames_rgb8``). ``options`` go to ``FaceTracker``."""
    tracker: FaceTracker | None = None
    tracks: FaceTracks | None = None
    previous: int | None = None
    for frame, image in frames:
        if tracker is None:
            tracker = FaceTracker(fps, **options)  # type: ignore[arg-type]
            tracks = FaceTracks(width=image.shape[1], height=image.shape[0], fps=fps)
        if previous is not None and frame != previous + 1:
            # A gap (missing frames): positions cannot be carried across it.
            for track in tracker._active:
                tracker._lose(track)
            tracker._active = []
        tracks.frames[frame] = tracker.update(frame, image)
        previous = frame
        if progress:
            progress(frame)
    return tracks or FaceTracks(0, 0, fps)
