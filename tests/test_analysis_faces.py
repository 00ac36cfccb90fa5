"""Faces on a real photograph (scikit-image's astronaut): detection, landmarks, head pose,
identities through motion and occlusion, smoothing."""
from __future__ import annotations

import math

import numpy as np
import pytest

from engine.analysis import models
from tests import analysis_scenes as scenes


def _require_models() -> None:
    bad = [s for s in models.model_status() if s.state != "ok"]
    if bad:
        pytest.skip(f"analysis models not installed ({bad[0].spec.name}: {bad[0].state}); "
                    "run `retake models --install` (./setup.sh does it)")


@pytest.fixture(scope="module")
def face_models():
    _require_models()
    from engine.analysis.faces import FaceDetector, FaceLandmarker

    return FaceDetector(threads=2), FaceLandmarker(threads=2)


@pytest.fixture(scope="module")
def reference(face_models) -> np.ndarray:
    """Landmarks found on the untransformed photograph: the truth the scenes are built on."""
    from engine.analysis.faces import detect_faces

    faces = detect_faces(scenes.astronaut(), *face_models)
    assert len(faces) == 1
    return faces[0].landmarks


def test_the_astronaut_face_has_landmarks_in_the_right_places(face_models) -> None:
    from engine.analysis.faces import detect_faces

    faces = detect_faces(scenes.astronaut(), *face_models)
    assert len(faces) == 1
    face = faces[0]
    assert face.landmarks.shape == (468, 3) and face.confidence > 0.9
    # The face lies around (226, 122) and is about 109 px high in the 512x512 photograph.
    assert 170 < face.box[0] < 190 and 265 < face.box[2] < 285 and 60 < face.box[1] < 80 and 168 < face.box[3] < 188
    p = face.key_points()
    assert p["right_eye_outer"][0] < p["right_eye_inner"][0] < p["left_eye_inner"][0] < p["left_eye_outer"][0]
    assert p["left_eye_outer"][1] < p["nose_tip"][1] < p["mouth_left"][1] < p["chin"][1]
    assert abs(face.head_pose.yaw) < 15 and abs(face.head_pose.roll) < 10


def test_eight_faces_96px_high_in_1080p_are_all_found_and_nothing_else(face_models, reference) -> None:
    from engine.analysis.faces import detect_faces

    places = scenes.grid(1920, 1080, 8, 96.0)
    image = scenes.render(scenes.background(1920, 1080), places)
    faces = detect_faces(image, *face_models)
    assert len(faces) == 8
    for place in places:
        truth = scenes.map_points(reference, place)
        best = min(faces, key=lambda f: float(np.linalg.norm(f.landmarks[:, :2].mean(0) - truth.mean(0))))
        error = np.linalg.norm(best.landmarks[:, :2] - truth, axis=1).mean()
        assert error < 0.02 * place.height, f"face at ({place.x:.0f}, {place.y:.0f}): mean landmark error {error:.2f} px"


def test_landmarks_and_roll_follow_a_known_similarity(face_models, reference) -> None:
    from engine.analysis.faces import detect_faces

    back = scenes.background(640, 360)
    upright = detect_faces(scenes.render(back, [scenes.Placement(320, 180, 150, 0.0)]), *face_models)[0]
    place = scenes.Placement(300, 190, 170, 25.0)
    faces = detect_faces(scenes.render(back, [place]), *face_models)
    assert len(faces) == 1
    error = np.linalg.norm(faces[0].landmarks[:, :2] - scenes.map_points(reference, place), axis=1).mean()
    assert error < 0.02 * place.height
    assert faces[0].head_pose.roll - upright.head_pose.roll == pytest.approx(25.0, abs=4.0)


def _identity_of(face, places: list[scenes.Placement]) -> int:
    centre = face.landmarks[:, :2].mean(axis=0)
    return int(np.argmin([math.hypot(p.x - centre[0], p.y - centre[1]) for p in places]))


def test_identities_survive_motion_occlusion_and_leaving_the_frame(face_models) -> None:
    from engine.analysis.face_tracks import FaceTracker

    tracker = FaceTracker(24.0, detector=face_models[0], landmarker=face_models[1])
    back = scenes.background(640, 360)
    ids: dict[int, int] = {}
    seen_ids: set[int] = set()
    for f in range(14):
        # Face 0 drifts right and is hidden on frames 3-5; face 1 runs off the right edge
        # (gone on frames 8-10) and comes back.
        x1 = 470 + 60 * f if f <= 9 else 470 + 60 * (18 - f)
        places = [scenes.Placement(150 + 8 * f, 180, 110), scenes.Placement(x1 if f < 7 else x1 + 200, 200, 100, 8)]
        visible = [True, not (7 <= f <= 11) or places[1].x < 560]
        occluders = [(80 + 8 * f, 60, 240 + 8 * f, 310)] if 3 <= f <= 5 else []
        shown = [p for p, v in zip(places, visible) if v]
        faces = tracker.update(1001 + f, scenes.render(back, shown, occluders=occluders))
        for face in faces:
            which = _identity_of(face, places)
            assert ids.setdefault(which, face.id) == face.id, f"frame {1001 + f}: face {which} changed identity"
            seen_ids.add(face.id)
        if 3 <= f <= 5:
            assert all(_identity_of(face, places) != 0 for face in faces), "a hidden face was reported"
    assert len(ids) == 2 and seen_ids == {1, 2}, "an identity was lost and a new one made"


def test_one_euro_filter_smooths_noise_and_follows_a_ramp() -> None:
    from engine.analysis.smoothing import OneEuroFilter

    rng = np.random.default_rng(1)
    still = OneEuroFilter(24.0)
    # Landmark-like noise: 0.1 px on an object 100 px across.
    noisy = 100.0 + rng.normal(0, 0.1, 60)
    out = np.array([still(np.array([value]), scale=100.0)[0] for value in noisy])
    assert out[20:].std() < 0.5 * noisy[20:].std()
    ramp = OneEuroFilter(24.0)
    lag = [abs(ramp(np.array([10.0 * i]), scale=100.0)[0] - 10.0 * i) for i in range(30)]
    assert max(lag[10:]) < 1.5, "the filter lags a face moving 10 px a frame"


def test_smoothing_gives_sub_pixel_jitter_on_a_still_face_without_lag_on_a_fast_one(face_models, reference) -> None:
    from engine.analysis.face_tracks import FaceTracker

    back = scenes.background(320, 240)
    results = {}
    for name, motion in (("still", lambda f: (160.0, 120.0)), ("fast", lambda f: (40.0 + 9.0 * f, 120.0))):
        tracker = FaceTracker(24.0, detector=face_models[0], landmarker=face_models[1])
        raw, smooth, truth = [], [], []
        for f in range(26):
            place = scenes.Placement(*motion(f), 90)
            faces = tracker.update(f, scenes.render(back, [place], noise=3.0, seed=f))
            assert len(faces) == 1
            raw.append(faces[0].raw_landmarks[:, :2])
            smooth.append(faces[0].landmarks[:, :2])
            truth.append(scenes.map_points(reference, place))
        results[name] = np.array(raw), np.array(smooth), np.array(truth)
    raw, smooth, _truth = results["still"]
    raw_jitter = raw[5:].std(axis=0).mean()
    jitter = smooth[5:].std(axis=0).mean()
    assert jitter < 0.3 and jitter < raw_jitter, f"jitter {jitter:.3f} px (raw {raw_jitter:.3f})"
    raw, smooth, truth = results["fast"]
    raw_error = np.linalg.norm(raw - truth, axis=2).mean()
    smooth_error = np.linalg.norm(smooth - truth, axis=2).mean()
    assert smooth_error < raw_error + 0.5, f"smoothed error {smooth_error:.2f} px vs raw {raw_error:.2f} px"
