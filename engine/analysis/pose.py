"""Body pose: 33 landmarks per person per frame, and each person's own mask (for the
``poses`` and ``bodies`` locks).

MediaPipe's BlazePose pipeline: the pose detector (224x224 in -1..1, letterboxed,
2254 anchors, 4 keypoints: hip centre, a point on the body's enclosing circle,
shoulder centre, a point above the head) finds each person; the crop for the
landmark model is centred on the hip centre, twice the circle radius wide,
turned so the body stands upright, 1.25x and square (MediaPipe's
``pose_detection_to_roi``). The landmark model (256x256 in 0..1) gives 39 points
(the first 33 are the body's) with visibility and presence logits, and a
256x256 person segmentation (logits).

Images are (H, W, 3) uint8 sRGB; landmarks are frame pixels (x, y; z relative
depth on the scale of x, smaller is nearer), visibility 0..1; masks (H, W)
float32 0..1.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from engine.analysis import ssd
from engine.analysis.crops import Roi, crop_roi, letterbox
from engine.analysis.models import load_model

NUM_POSE_LANDMARKS = 33
POSE_LANDMARK_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)
DETECTOR_SIZE = 224
LANDMARK_SIZE = 256


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, dtype=np.float64), -60.0, 60.0)))


@dataclass
class PersonPose:
    """One person in one frame: ``landmarks`` (33, 3) float32 frame pixels, ``visibility`` (33,)
    0..1, ``presence`` 0..1 (the model's confidence that a body is in the crop), ``mask`` (H, W)
    float32 0..1 of this person, ``roi`` the crop used."""

    landmarks: np.ndarray
    visibility: np.ndarray
    presence: float
    mask: np.ndarray
    roi: Roi

    def named(self) -> dict[str, tuple[float, float, float]]:
        return {name: (float(self.landmarks[i, 0]), float(self.landmarks[i, 1]), float(self.visibility[i]))
                for i, name in enumerate(POSE_LANDMARK_NAMES)}


class PoseEstimator:
    """Pose detector + landmark model, for up to ``max_people`` people per frame."""

    def __init__(self, threads: int | None = None, max_people: int = 4, min_score: float = 0.5,
                 min_presence: float = 0.5) -> None:
        self.detector = load_model("pose_detection", threads)
        self.landmarker = load_model("pose_landmark", threads)
        self.anchors = ssd.anchor_centres(ssd.POSE_DETECTOR)
        outputs = self.detector.get_output_details()
        self._boxes = next(o["index"] for o in outputs if o["shape"][-1] == 12)
        self._scores = next(o["index"] for o in outputs if o["shape"][-1] == 1)
        if int(outputs[0]["shape"][1]) != len(self.anchors):
            raise RuntimeError(f"the pose detector has {outputs[0]['shape'][1]} anchors, the decoder {len(self.anchors)}")
        named = {tuple(o["shape"]): o["index"] for o in self.landmarker.get_output_details()}
        self._points = named[(1, 195)]
        self._flag = named[(1, 1)]
        self._segmentation = named[(1, 256, 256, 1)]
        self.max_people = max_people
        self.min_score = min_score
        self.min_presence = min_presence

    def detect(self, image: np.ndarray) -> list[Roi]:
        """(H, W, 3) uint8 sRGB -> one landmark crop per person found."""
        height, width = image.shape[:2]
        crop = letterbox(image, 0.0, 0.0, float(width), float(height), DETECTOR_SIZE)
        self.detector.set_tensor(self.detector.get_input_details()[0]["index"],
                                 crop.pixels.astype(np.float32)[None] / 127.5 - 1.0)
        self.detector.invoke()
        found = ssd.decode(self.detector.get_tensor(self._boxes)[0], self.detector.get_tensor(self._scores)[0],
                           self.anchors, DETECTOR_SIZE, 4, self.min_score)
        rois = []
        for hit in ssd.weighted_nms(found, 0.3)[: self.max_people]:
            hip, circle = crop.to_image(hit.keypoints[:2])
            rotation = math.pi / 2 - math.atan2(-(circle[1] - hip[1]), circle[0] - hip[0])
            rotation = (rotation + math.pi) % (2 * math.pi) - math.pi
            size = 2.0 * float(np.linalg.norm(circle - hip)) * 1.25
            rois.append(Roi(float(hip[0]), float(hip[1]), size, size, rotation))
        return rois

    def landmarks(self, image: np.ndarray, roi: Roi) -> PersonPose:
        """The 33 landmarks and the mask of the person in ``roi`` of an (H, W, 3) uint8 sRGB frame."""
        crop = crop_roi(image, roi, LANDMARK_SIZE)
        self.landmarker.set_tensor(self.landmarker.get_input_details()[0]["index"],
                                   crop.pixels.astype(np.float32)[None] / 255.0)
        self.landmarker.invoke()
        raw = self.landmarker.get_tensor(self._points).reshape(39, 5)[:NUM_POSE_LANDMARKS].astype(np.float64)
        presence = float(self.landmarker.get_tensor(self._flag).reshape(-1)[0])
        points = np.empty((NUM_POSE_LANDMARKS, 3), dtype=np.float32)
        points[:, :2] = crop.to_image(raw[:, :2])
        points[:, 2] = raw[:, 2] * crop.scale
        visibility = _sigmoid(raw[:, 3]).astype(np.float32)
        logits = self.landmarker.get_tensor(self._segmentation)[0, :, :, 0]
        height, width = image.shape[:2]
        # The crop's mask back onto the frame: the inverse of the crop's map, in pixel indices.
        to_frame = np.vstack([crop.matrix, [0.0, 0.0, 1.0]])
        shift = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1.0]]) @ to_frame @ np.array([[1, 0, 0.5], [0, 1, 0.5],
                                                                                        [0, 0, 1.0]])
        mask = cv2.warpAffine(_sigmoid(logits).astype(np.float32), shift[:2], (width, height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        return PersonPose(points, visibility, presence, mask, roi)

    def people(self, image: np.ndarray) -> list[PersonPose]:
        """Every person's pose in one (H, W, 3) uint8 sRGB frame, left to right."""
        found = [self.landmarks(image, roi) for roi in self.detect(image)]
        found = [p for p in found if p.presence >= self.min_presence]
        return sorted(found, key=lambda p: float(p.landmarks[:, 0].mean()))


def anyone_in(frames: Iterable[tuple[int, np.ndarray]], cancelled: Callable[[], bool] = lambda: False) -> bool:
    """Whether the pose detector (and its landmark model's presence check) finds a person on any
    of ``frames`` ((frame, (h, w, 3) uint8 sRGB)); it stops at the first one.

    The plate-level question to ask before trusting a person mask: the selfie segmentation
    model assumes someone is there and, on a landscape or a product shot, calls the most
    salient thing (a cup, the ground) a person.
    """
    estimator = PoseEstimator(max_people=1)
    for _frame, rgb8 in frames:
        if cancelled():
            from engine.errors import CancelledError
            raise CancelledError("cancelled while looking for people in the plate; nothing was written")
        if estimator.people(rgb8):
            return True
    return False
