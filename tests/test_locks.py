"""Character locks: each changes the result measurably in its region and nowhere else.

The operations are checked on generated images with a known answer; the stage and a
whole propagation job on scikit-image's real astronaut photograph with the real
analysis models (skipped, saying why, when the models are not installed).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engine.colour import Colour
from engine.encoding import acescct_encode
from engine.job import Locks, parse_job
from engine.locks import face_regions, limb_regions, silhouette_lock, structure_lock
from engine.filters import gaussian_blur
from tests import analysis_scenes as scenes

H, W = 96, 128


def t(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]


def texture(seed: int = 0) -> np.ndarray:
    """(H, W, 3) float32 ACEScg: fine random texture around mid grey."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (H, W, 3)).astype(np.float32), (0, 0), 1.2)
    return (0.18 * np.exp(noise)).astype(np.float32)


def disc(cx: float, cy: float, r: float) -> np.ndarray:
    ys, xs = np.mgrid[0:H, 0:W] + 0.5
    return (((xs - cx) ** 2 + (ys - cy) ** 2) <= r * r).astype(np.float32)


def highpass(image: np.ndarray, source: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """|high frequencies of the edit| per pixel, ACEScct: what reshapes, not what recolours."""
    edit = acescct_encode(t(image)) - acescct_encode(t(source))
    return (edit - gaussian_blur(edit, sigma)).abs().mean(dim=1)[0].numpy()


def test_structure_lock_keeps_the_look_drops_the_reshaping_and_touches_nothing_outside() -> None:
    source = texture()
    moved = np.roll(source, (2, 3), axis=(0, 1))            # the edit reshaped everything...
    result = moved * np.array([1.3, 1.0, 0.7], np.float32)   # ...and graded it warm
    region = cv2.GaussianBlur(disc(64, 48, 28), (0, 0), 2.0) * (cv2.dilate(disc(64, 48, 28), None, iterations=6) > 0)
    locked = structure_lock(t(source), t(result), torch.from_numpy(region)[None, None], 3.0)[0].permute(1, 2, 0).numpy()
    outside = region == 0
    assert np.array_equal(locked[outside], result[outside])
    core = disc(64, 48, 18) > 0
    before, after = highpass(result, source)[core].mean(), highpass(locked, source)[core].mean()
    assert after < 0.3 * before, (before, after)
    # the grade survives: the mean colour shift in ACEScct is the result's
    shift = (acescct_encode(t(locked)) - acescct_encode(t(source)))[0].permute(1, 2, 0).numpy()[core].mean(axis=0)
    wanted = (acescct_encode(t(result)) - acescct_encode(t(source)))[0].permute(1, 2, 0).numpy()[core].mean(axis=0)
    np.testing.assert_allclose(shift, wanted, atol=0.01)


def test_silhouette_lock_cuts_a_spill_back_to_the_outline_and_nothing_else() -> None:
    source = texture(1)
    person = disc(60, 50, 26)
    spill = cv2.dilate(person, None, iterations=6)             # the recolour bled 6 px out
    recolour = source * np.array([0.6, 0.8, 1.5], np.float32)
    result = source * (1 - spill[..., None]) + recolour * spill[..., None]
    locked = silhouette_lock(t(source), t(result), torch.from_numpy(person)[None, None], 8.0)[0].permute(1, 2, 0).numpy()
    ring = (spill > 0) & (cv2.dilate(person, None, iterations=1) == 0)
    before = np.abs(result - source)[ring].mean()
    after = np.abs(locked - source)[ring].mean()
    assert after < 0.1 * before, (before, after)
    far = cv2.dilate(person, None, iterations=12) == 0
    deep = cv2.erode(person, None, iterations=12) > 0
    assert np.array_equal(locked[far], result[far]) and np.array_equal(locked[deep], result[deep])
    # inside the outline the recolour is kept
    inside = (person > 0) & ~deep
    assert np.abs(locked - recolour)[inside].mean() < 0.1 * np.abs(source - recolour)[inside].mean()
    # "outside" only: the subject's own side is left as it is
    outer = silhouette_lock(t(source), t(result), torch.from_numpy(person)[None, None], 8.0,
                            sides="outside")[0].permute(1, 2, 0).numpy()
    assert np.array_equal(outer[person > 0.5], result[person > 0.5])
    assert np.abs(outer - source)[ring].mean() < 0.1 * before


def test_regions_are_soft_bounded_and_one_per_face_or_person() -> None:
    ys, xs = np.mgrid[0:22, 0:22]
    face = np.stack([30 + xs.ravel() * 2.0, 20 + ys.ravel() * 2.5], axis=1)[:468]
    (weight, size), = face_regions([face], W, H)
    assert weight.shape == (H, W) and weight.dtype == np.float32 and size == pytest.approx(52.5)
    assert weight[45, 50] == pytest.approx(1.0) and weight[5, 120] == 0.0 and 0 < weight.max() <= 1
    body = np.zeros((33, 3))
    body[[11, 12, 23, 24, 13, 15], :2] = [[50, 20], [80, 20], [52, 70], [78, 70], [40, 45], [35, 70]]
    visible = np.zeros(33)
    visible[[11, 12, 23, 24, 13, 15]] = 1.0
    regions = limb_regions([(body, visible), (body, np.zeros(33))], W, H)
    assert len(regions) == 2 and not regions[1][0].any()
    weight, torso = regions[0]
    assert torso == pytest.approx(50.0) and weight[45, 50] > 0.9 and weight[90, 120] == 0.0
    assert weight[58, 37] > 0.9   # along the left forearm (13 -> 15)


# --------------------------------------------------------------------------- with the models

@pytest.fixture(scope="module")
def models() -> None:
    from engine.analysis import models as m
    bad = [s for s in m.model_status() if s.state != "ok"]
    if bad:
        pytest.skip(f"analysis models not installed ({bad[0].spec.name}: {bad[0].state}); "
                    "run `retake models --install` (./setup.sh does it)")


@pytest.fixture(scope="module")
def colour() -> Colour:
    return Colour()


working = scenes.srgb_to_acescg
reshape_face = scenes.reshape_face


def landmarks(colour: Colour, image: np.ndarray) -> np.ndarray:
    from engine.analysis.faces import FaceDetector, FaceLandmarker, detect_faces
    from engine.analysis.frames import display_rgb8

    faces = detect_faces(display_rgb8(colour, image), FaceDetector(threads=2), FaceLandmarker(threads=2))
    assert len(faces) == 1
    return faces[0].landmarks[:, :2]


def test_a_face_lock_on_a_propagation_job_keeps_the_source_face(models, colour, tmp_path: Path) -> None:
    """Keyframes whose paint moved the eyes and mouth, carried across a moving head: unlocked, the
    result's landmarks follow the paint; locked, they follow the source, and the frame outside
    the face is the same as without the lock."""
    from engine.io.aces_exr import write_exr
    from engine.io.exr import read_image
    from engine.io.header import AP1
    from engine.pipeline import RunOptions, run_job

    back = scenes.background(320, 240, seed=3)
    places = [scenes.Placement(x=140 + 3 * i, y=118, height=100) for i in range(5)]
    plate = tmp_path / "plate"
    plate.mkdir()
    sources = []
    for i, place in enumerate(places):
        source = working(colour, scenes.render(back, [place]))
        sources.append(source)
        write_exr(str(plate / f"head.{1001 + i:04d}.exr"), source, chromaticities=AP1, aces_container=False)
    keys = []
    for i in (0, 4):
        painted = colour.cdl(reshape_face(sources[i], (places[i].x, places[i].y - 5), 100 / scenes.FACE_HEIGHT),
                             slope=[1.15, 1.0, 0.8], saturation=1.1)
        path = tmp_path / f"key.{1001 + i:04d}.exr"
        write_exr(str(path), painted, chromaticities=AP1, aces_container=False)
        keys.append({"frame": 1001 + i, "image": str(path), "colorspace": "ACEScg"})
    outputs = {}
    for locked in (False, True):
        spec = {"plate": {"path": str(plate / "head.####.exr"), "colorspace": "ACEScg", "fps": "24"},
                "keyframes": keys,
                "transform": {"name": "propagate", "flow": "dis"}, "locks": {"faces": locked},
                "output": {"path": str(tmp_path / f"out{int(locked)}" / "r.####.exr")}}
        result = run_job(parse_job(spec), RunOptions())
        assert not result.warnings, result.warnings
        outputs[locked] = [read_image(str(tmp_path / f"out{int(locked)}" / f"r.{f:04d}.exr"))[..., :3]
                           for f in range(1001, 1006)]
    errors = {False: [], True: []}
    for i in range(5):
        truth = landmarks(colour, sources[i])
        for locked in (False, True):
            errors[locked].append(float(np.linalg.norm(landmarks(colour, outputs[locked][i]) - truth, axis=1).mean()))
        (region, _size), = face_regions([truth], 320, 240)
        outside = cv2.dilate((region > 0).astype(np.uint8), None, iterations=3) == 0
        assert np.array_equal(outputs[True][i][outside], outputs[False][i][outside]), f"frame {1001 + i}"
    print("face landmark error px, unlocked / locked:", np.round(errors[False], 2), np.round(errors[True], 2))
    assert np.mean(errors[True]) < 0.35 * np.mean(errors[False]) and max(errors[True]) < 1.5


def test_bodies_lock_holds_the_silhouette_of_a_real_person(models, colour) -> None:
    from engine.analysis.masks import PersonSegmenter
    from engine.lock_stage import LockStage

    photo = scenes.astronaut()
    source = working(colour, photo)
    inside = (PersonSegmenter(threads=2).raw_mask(photo) > 0.5).astype(np.uint8)
    spill = cv2.GaussianBlur(cv2.dilate(inside, None, iterations=10).astype(np.float32), (0, 0), 2.0)
    recolour = colour.cdl(source, slope=[0.6, 0.8, 1.4], saturation=1.3)
    result = source * (1 - spill[..., None]) + recolour * spill[..., None]
    locked = LockStage(Locks(bodies=True), colour).apply(1001, source, result)
    ring = (cv2.dilate(inside, None, iterations=10) > 0) & (cv2.dilate(inside, None, iterations=3) == 0)
    before, after = np.abs(result - source)[ring].mean(), np.abs(locked - source)[ring].mean()
    assert after < 0.1 * before, (before, after)
    far = cv2.dilate(inside, None, iterations=30) == 0
    deep = cv2.erode(inside, None, iterations=30) > 0
    assert np.array_equal(locked[far], result[far]) and np.array_equal(locked[deep], result[deep])


def test_poses_lock_gives_the_limbs_the_source_structure(models, colour) -> None:
    from engine.analysis.pose import PoseEstimator
    from engine.lock_stage import LockStage

    photo = scenes.astronaut()
    source = working(colour, photo)
    h, w = source.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    bent = cv2.remap(source, xs + 6 * np.sin(ys / 25.0), ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    result = colour.cdl(bent, slope=[1.1, 1.0, 0.9])
    locked = LockStage(Locks(poses=True), colour).apply(1001, source, result)
    person = PoseEstimator(threads=2).people(photo)[0]
    (region, _torso), = limb_regions([(person.landmarks, person.visibility)], w, h)
    core = region > 0.99
    assert core.sum() > 2000
    before, after = highpass(result, source)[core].mean(), highpass(locked, source)[core].mean()
    assert after < 0.4 * before, (before, after)
    assert np.array_equal(locked[region == 0], result[region == 0]) and (region == 0).sum() > 0.3 * h * w


def test_blocking_lock_keeps_the_subject_in_place_but_free_inside(models, colour) -> None:
    from engine.analysis.masks import PersonSegmenter
    from engine.lock_stage import BLOCKING_MARGIN, LockStage, blocking_outline

    photo = scenes.astronaut()
    source = working(colour, photo)
    person = PersonSegmenter(threads=2).raw_mask(photo)
    inside = (person > 0.5).astype(np.uint8)
    outline, band = blocking_outline(person, 512, 512)
    assert band == round(BLOCKING_MARGIN * 512)
    # coarse placement: the subject's area holds the person and reaches at most ~2 margins beyond it
    assert outline[inside > 0].min() == 1 and not outline[cv2.dilate(inside, None, iterations=int(2 * band)) == 0].any()
    held = (cv2.dilate(outline.astype(np.uint8), None, iterations=int(band)) > 0) & (outline == 0)
    smear = cv2.dilate(outline.astype(np.uint8), None, iterations=int(band) - 2).astype(np.float32)  # spilled out
    styled = colour.cdl(source, slope=[0.5, 0.9, 1.6], saturation=0.5)
    result = source * (1 - smear[..., None]) + styled * smear[..., None]
    locked = LockStage(Locks(blocking=True), colour).apply(1001, source, result)
    spilled = held & (smear > 0)
    assert np.abs(locked - source)[spilled].mean() < 0.2 * np.abs(result - source)[spilled].mean()
    assert np.array_equal(locked[outline > 0], result[outline > 0])     # the subject is free inside its area
    far = cv2.dilate(outline.astype(np.uint8), None, iterations=int(band) + 2) == 0
    assert np.array_equal(locked[far], result[far])


def test_a_missing_model_stops_a_locked_job_with_the_install_command(monkeypatch, tmp_path: Path, colour) -> None:
    from engine.analysis.models import ModelMissingError
    from engine.lock_stage import LockStage

    monkeypatch.delenv("RETAKE_MODELS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty"))
    with pytest.raises(ModelMissingError, match="retake models --install"):
        LockStage(Locks(faces=True), colour)


def test_grade_ignores_locks_and_says_so(tmp_path: Path, colour) -> None:
    from engine.io.aces_exr import write_exr
    from engine.io.header import AP1
    from engine.pipeline import RunOptions, run_job

    for f in (1, 2):
        write_exr(str(tmp_path / f"p.{f:04d}.exr"), texture(f), chromaticities=AP1, aces_container=False)
    spec = {"plate": {"path": str(tmp_path / "p.####.exr"), "colorspace": "ACEScg"},
            "locks": {"faces": True, "bodies": True}, "transform": {"name": "grade"},
            "keyframes": [{"frame": 1, "grade": {"slope": [1.2, 1, 1]}}],
            "output": {"path": str(tmp_path / "o" / "o.####.exr")}}
    result = run_job(parse_job(json.loads(json.dumps(spec))), RunOptions())
    assert any("locks are not used by 'grade'" in w for w in result.warnings)


def test_bodies_and_blocking_hold_nothing_on_a_plate_with_nobody(models, colour, tmp_path: Path) -> None:
    """The person segmenter calls part of the demo plate's ground a person; the plate-level pose
    check finds nobody there, so the locks leave the result alone (and say so), while the same
    check finds the astronaut."""
    from engine import demo
    from engine.io.exr import read_image
    from engine.lock_stage import LockStage, plate_has_people

    pattern = demo.write_demo_plate(tmp_path / "plate", 8, colour)
    frames = [colour.convert(np.ascontiguousarray(read_image(pattern.replace("####", str(1001 + i)))[..., :3]),
                             "ACES2065-1", "ACEScg") for i in range(8)]   # (540, 960, 3) ACEScg
    assert not plate_has_people(lambda f: frames[f], (0, 7), colour)
    astronaut = working(colour, scenes.astronaut())
    assert plate_has_people(lambda f: astronaut, (0, 0), colour)

    result = [colour.cdl(f, slope=[1.3, 1.0, 0.7], saturation=1.2) for f in frames]
    unchecked = LockStage(Locks(bodies=True, blocking=True), colour)
    checked = LockStage(Locks(bodies=True, blocking=True), colour,
                        people_on_plate=lambda: plate_has_people(lambda f: frames[f], (0, 7), colour))
    changed = 0
    for i in range(8):
        changed += int(not np.array_equal(unchecked.apply(i, frames[i], result[i]), result[i]))
        assert np.array_equal(checked.apply(i, frames[i], result[i]), result[i]), f"frame {i}"
    assert changed > 0, "the segmenter no longer imagines a person on the demo plate: this test shows nothing"
    assert any("finds nobody on the plate" in line for line in checked.warnings())
