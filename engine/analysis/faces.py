"""Faces in one frame: the full-range detector, then 468 landmarks per face crop, then head pose.

Images here are (H, W, 3) uint8 sRGB (``frames.display_rgb8`` makes them from
working-space frames). Coordinates are frame pixels, x right, y down, pixel
centres at +0.5 (see ``frames``).

Why two models: the landmark model alone misses small faces, so the full-range
detector finds every face first (on the whole frame and on overlapping tiles,
so that a face 96 px high in a 1920x1080 frame is still 30+ px in the
detector's 192x192 input), and the landmark model then runs on a rotated crop
around each face. Between frames ``face_tracks`` feeds each face's crop from its
previous landmarks, as MediaPipe does.

Model details (MediaPipe's graphs): the detector takes 192x192 RGB in -1..1,
letterboxed; the landmark model takes a 192x192 crop in 0..1 whose region is
the face box turned upright by the eye line, scaled 1.5x and made square; it
returns 468 (x, y, z) in crop pixels (z on the same scale as x, smaller is
nearer the camera) and a face-presence logit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from engine.analysis import ssd
from engine.analysis.crops import Crop, Roi, crop_roi, letterbox
from engine.analysis.models import load_model

# Landmark indices of the 468-point mesh that compositors track by hand.
KEY_LANDMARKS: dict[str, int] = {
    "right_eye_outer": 33,
    "right_eye_inner": 133,
    "left_eye_inner": 362,
    "left_eye_outer": 263,
    "nose_tip": 1,
    "mouth_right": 61,
    "mouth_left": 291,
    "chin": 152,
}
FOREHEAD = 10
NUM_LANDMARKS = 468

DETECTOR_SIZE = 192
LANDMARK_SIZE = 192
DETECTOR_KEYPOINTS = 6  # right eye, left eye, nose tip, mouth centre, right ear, left ear
ROI_SCALE = 1.5


@dataclass
class FaceDetection:
    """A detector hit in frame pixels: ``box`` (x0, y0, x1, y1), ``keypoints`` (6, 2)
    (right eye, left eye, nose tip, mouth centre, right ear, left ear; "right" is
    the person's), ``score`` 0..1."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float


@dataclass
class HeadPose:
    """Head rotation from the 3D landmarks. Degrees: ``yaw`` (turn about the image's
    vertical axis, positive when the face turns towards the image's right), ``pitch``
    (nod, positive chin down... towards the camera's down), ``roll`` (in-plane tilt,
    positive clockwise on screen). ``matrix`` (3, 3): the face's axes as columns
    (x: its right-to-left eye direction, y: forehead to chin, z: into the image)."""

    yaw: float
    pitch: float
    roll: float
    matrix: np.ndarray


@dataclass
class FaceObservation:
    """One face in one frame.

    ``landmarks`` (468, 3) float32: x, y in frame pixels, z relative depth in
    frame pixels (smaller is nearer); ``box`` (x0, y0, x1, y1) around the
    landmarks; ``confidence`` the landmark model's face presence 0..1;
    ``head_pose``; ``roi`` the crop the landmarks came from.
    """

    landmarks: np.ndarray
    box: np.ndarray
    confidence: float
    head_pose: HeadPose
    roi: Roi
    detection_score: float | None = None
    extra: dict[str, float] = field(default_factory=dict)

    def key_points(self) -> dict[str, tuple[float, float]]:
        return {name: (float(self.landmarks[i, 0]), float(self.landmarks[i, 1])) for name, i in KEY_LANDMARKS.items()}


def _tiles(width: int, height: int) -> list[tuple[float, float, float, float]]:
    """The whole frame plus square tiles half its short side, overlapping by half a tile."""
    regions = [(0.0, 0.0, float(width), float(height))]
    short = min(width, height)
    if short < 384:
        return regions
    tile = short / 2
    step = tile / 2
    cols = max(1, math.ceil((width - tile) / step) + 1)
    rows = max(1, math.ceil((height - tile) / step) + 1)
    for r in range(rows):
        for c in range(cols):
            x0 = min(c * step, width - tile)
            y0 = min(r * step, height - tile)
            regions.append((x0, y0, x0 + tile, y0 + tile))
    return regions


class FaceDetector:
    """The full-range face detector over a whole frame and overlapping tiles."""

    def __init__(self, min_score: float = 0.5, threads: int | None = None, tiled: bool = True) -> None:
        self.interpreter = load_model("face_detection", threads)
        self.min_score = min_score
        self.tiled = tiled
        self.anchors = ssd.anchor_centres(ssd.FACE_FULL_RANGE)
        details = self.interpreter.get_output_details()
        self._boxes = next(d["index"] for d in details if d["shape"][-1] == 16)
        self._scores = next(d["index"] for d in details if d["shape"][-1] == 1)
        self._input = self.interpreter.get_input_details()[0]["index"]
        count = int(details[0]["shape"][1])
        if count != len(self.anchors):
            raise RuntimeError(f"the face detector has {count} anchors, the decoder {len(self.anchors)}")

    def _run(self, crop: Crop) -> list[ssd.RawDetection]:
        tensor = crop.pixels.astype(np.float32)[None] / 127.5 - 1.0
        self.interpreter.set_tensor(self._input, tensor)
        self.interpreter.invoke()
        boxes = self.interpreter.get_tensor(self._boxes)[0]
        scores = self.interpreter.get_tensor(self._scores)[0]
        return ssd.decode(boxes, scores, self.anchors, DETECTOR_SIZE, DETECTOR_KEYPOINTS, self.min_score)

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """(H, W, 3) uint8 sRGB -> the faces in it, best first, in frame pixels."""
        height, width = image.shape[:2]
        regions = _tiles(width, height) if self.tiled else [(0.0, 0.0, float(width), float(height))]
        found: list[ssd.RawDetection] = []
        for index, (x0, y0, x1, y1) in enumerate(regions):
            crop = letterbox(image, x0, y0, x1, y1, DETECTOR_SIZE)
            margin = 0.02 * (x1 - x0)
            for hit in self._run(crop):
                corners = crop.to_image(hit.box.reshape(2, 2)).ravel()
                # A face cut by a tile's inner edge is whole in a neighbouring
                # tile (they overlap by half) or in the whole-frame pass.
                if index > 0 and ((corners[0] < x0 + margin and x0 > 0) or (corners[1] < y0 + margin and y0 > 0)
                                  or (corners[2] > x1 - margin and x1 < width)
                                  or (corners[3] > y1 - margin and y1 < height)):
                    continue
                found.append(ssd.RawDetection(corners, crop.to_image(hit.keypoints), hit.score))
        merged = ssd.weighted_nms(found, 0.3)
        return [FaceDetection(d.box, d.keypoints, d.score) for d in merged]


def roi_from_detection(detection: FaceDetection) -> Roi:
    """MediaPipe's face-detection-to-crop rule: box centre, upright by the eye line, 1.5x, square."""
    right_eye, left_eye = detection.keypoints[0], detection.keypoints[1]
    rotation = -math.atan2(-(left_eye[1] - right_eye[1]), left_eye[0] - right_eye[0])
    x0, y0, x1, y1 = detection.box
    size = max(x1 - x0, y1 - y0) * ROI_SCALE
    return Roi((x0 + x1) / 2, (y0 + y1) / 2, size, size, rotation)


def roi_from_landmarks(landmarks: np.ndarray) -> Roi:
    """The next frame's crop from this frame's landmarks (MediaPipe's landmarks-to-ROI rule):
    upright by the outer eye corners, the landmarks' extent in that upright frame, 1.5x, square."""
    right, left = landmarks[KEY_LANDMARKS["right_eye_outer"], :2], landmarks[KEY_LANDMARKS["left_eye_outer"], :2]
    rotation = -math.atan2(-(left[1] - right[1]), left[0] - right[0])
    c, s = math.cos(rotation), math.sin(rotation)
    upright = landmarks[:, :2] @ np.array([[c, -s], [s, c]])  # rotate by -rotation
    lo, hi = upright.min(axis=0), upright.max(axis=0)
    centre_upright = (lo + hi) / 2
    centre = np.array([[c, -s], [s, c]]) @ centre_upright
    size = float(max(hi - lo)) * ROI_SCALE
    return Roi(float(centre[0]), float(centre[1]), size, size, rotation)


def head_pose(landmarks: np.ndarray) -> HeadPose:
    """Head rotation from (468, 3) landmarks (x, y, z in frame pixels, z into the image)."""
    p = landmarks.astype(np.float64)
    x_axis = p[KEY_LANDMARKS["left_eye_outer"]] - p[KEY_LANDMARKS["right_eye_outer"]]
    y_axis = p[KEY_LANDMARKS["chin"]] - p[FOREHEAD]
    x_axis /= np.linalg.norm(x_axis)
    y_axis -= x_axis * float(x_axis @ y_axis)
    y_axis /= np.linalg.norm(y_axis)
    z_axis = np.cross(x_axis, y_axis)
    matrix = np.stack([x_axis, y_axis, z_axis], axis=1)
    # matrix = Rz(roll) @ Ry(yaw) @ Rx(pitch)
    yaw = math.degrees(math.asin(float(np.clip(-matrix[2, 0], -1.0, 1.0))))
    roll = math.degrees(math.atan2(matrix[1, 0], matrix[0, 0]))
    pitch = math.degrees(math.atan2(matrix[2, 1], matrix[2, 2]))
    return HeadPose(yaw=yaw, pitch=pitch, roll=roll, matrix=matrix)


class FaceLandmarker:
    """468 landmarks for a face, given the rotated crop around it."""

    def __init__(self, threads: int | None = None) -> None:
        self.interpreter = load_model("face_landmark", threads)
        self._input = self.interpreter.get_input_details()[0]["index"]
        outputs = self.interpreter.get_output_details()
        self._points = next(d["index"] for d in outputs if d["shape"][-1] == NUM_LANDMARKS * 3)
        self._presence = next(d["index"] for d in outputs if d["shape"][-1] == 1)

    def observe(self, image: np.ndarray, roi: Roi, detection_score: float | None = None) -> FaceObservation:
        """(H, W, 3) uint8 sRGB frame and a crop region -> the face's landmarks in frame pixels."""
        crop = crop_roi(image, roi, LANDMARK_SIZE)
        self.interpreter.set_tensor(self._input, crop.pixels.astype(np.float32)[None] / 255.0)
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self._points).reshape(NUM_LANDMARKS, 3).astype(np.float64)
        logit = float(self.interpreter.get_tensor(self._presence).reshape(-1)[0])
        presence = 1.0 / (1.0 + math.exp(-max(min(logit, 100.0), -100.0)))
        points = np.empty((NUM_LANDMARKS, 3), dtype=np.float32)
        points[:, :2] = crop.to_image(raw[:, :2])
        points[:, 2] = raw[:, 2] * crop.scale
        box = np.array([*points[:, :2].min(axis=0), *points[:, :2].max(axis=0)], dtype=np.float64)
        return FaceObservation(points, box, presence, head_pose(points), roi, detection_score)


def detect_faces(image: np.ndarray, detector: FaceDetector, landmarker: FaceLandmarker,
                 max_faces: int = 8, min_presence: float = 0.5) -> list[FaceObservation]:
    """Every face in one (H, W, 3) uint8 sRGB frame, without tracking: detector, then landmarks
    per face, refined once with a crop from its own landmarks. At most ``max_faces``, best first."""
    faces: list[FaceObservation] = []
    for detection in detector.detect(image)[:max_faces]:
        first = landmarker.observe(image, roi_from_detection(detection), detection.score)
        if first.confidence < min_presence:
            continue
        refined = landmarker.observe(image, roi_from_landmarks(first.landmarks), detection.score)
        faces.append(refined if refined.confidence >= min_presence else first)
    return faces
