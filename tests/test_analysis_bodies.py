"""Person masks and 33-landmark poses on a real photograph (scikit-image's astronaut)."""
from __future__ import annotations

import numpy as np
import pytest

from engine.analysis import models
from tests import analysis_scenes as scenes


@pytest.fixture(scope="module", autouse=True)
def _models() -> None:
    bad = [s for s in models.model_status() if s.state != "ok"]
    if bad:
        pytest.skip(f"analysis models not installed ({bad[0].spec.name}: {bad[0].state}); "
                    "run `retake models --install` (./setup.sh does it)")


def test_pose_of_the_astronaut() -> None:
    from engine.analysis.pose import PoseEstimator

    people = PoseEstimator(threads=2).people(scenes.astronaut())
    assert len(people) == 1
    pose = people[0]
    assert pose.landmarks.shape == (33, 3) and pose.presence > 0.8
    p = pose.named()
    # The nose is on the face (about (222, 131) in the photograph), the eyes above it.
    assert abs(p["nose"][0] - 222) < 15 and abs(p["nose"][1] - 128) < 15
    assert p["left_eye"][1] < p["nose"][1] and p["right_eye"][1] < p["nose"][1]
    # Shoulders below the mouth, the person's left on the image's right.
    assert p["left_shoulder"][1] > p["mouth_left"][1] + 40 and p["left_shoulder"][0] > p["right_shoulder"][0] + 100
    assert pose.mask[300, 200] > 0.9 and pose.mask[50, 450] < 0.1


def test_person_mask_is_soft_right_and_steady() -> None:
    from engine.analysis.masks import PersonSegmenter

    photo = scenes.astronaut()
    segmenter = PersonSegmenter(threads=2)
    mask = segmenter.mask(photo)
    assert mask.shape == (512, 512) and mask.dtype == np.float32
    assert mask[100:170, 190:260].mean() > 0.9, "the face is not in the person mask"
    assert mask[20:80, 400:480].mean() < 0.1, "the sky behind is in the person mask"
    assert ((mask > 0.05) & (mask < 0.95)).any(), "the mask is not soft"

    # Sensor noise on a still shot: the steadied mask flickers less than each frame's own.
    rng = np.random.default_rng(3)
    segmenter.reset()
    raw, steady = [], []
    for _ in range(8):
        noisy = np.clip(photo + rng.normal(0, 6, photo.shape), 0, 255).astype(np.uint8)
        raw.append(segmenter.raw_mask(noisy))
        steady.append(segmenter.mask(noisy))
    flicker_raw = np.mean([np.abs(a - b).mean() for a, b in zip(raw[1:], raw[:-1])])
    flicker = np.mean([np.abs(a - b).mean() for a, b in zip(steady[1:], steady[:-1])])
    assert flicker < 0.8 * flicker_raw

    # A jump of the person: the confident mask follows at once (no lag).
    moved = np.roll(photo, 40, axis=1)
    after = segmenter.mask(moved) > 0.5
    truth = segmenter.raw_mask(moved) > 0.5
    assert (after & truth).sum() / (after | truth).sum() > 0.95
