"""Planar and camera tracking on real photographs moved by known homographies."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from tests import analysis_scenes as scenes


@pytest.fixture(scope="module")
def planar_scene() -> scenes.PlanarScene:
    return scenes.planar_scene(count=14, occluder=True)


@pytest.mark.parametrize("reference", [0, 7])
def test_planar_tracker_holds_the_corners_through_a_crossing_occluder(planar_scene, reference: int) -> None:
    from engine.analysis.planar import track_quad

    frames = [(1001 + i, f) for i, f in enumerate(planar_scene.frames)]
    track = track_quad(frames, 1001 + reference, planar_scene.corners[reference])
    errors = [np.linalg.norm(track.corners[1001 + i] - truth, axis=1).mean()
              for i, truth in enumerate(planar_scene.corners)]
    assert np.mean(errors) < 1.0 and max(errors) < 2.0, f"corner errors {np.round(errors, 2)}"
    assert sorted(track.corners) == list(range(1001, 1001 + len(frames)))


def test_planar_tracker_refuses_a_quad_with_nothing_in_it() -> None:
    from engine.analysis.planar import track_quad
    from engine.errors import InputError

    flat = np.full((120, 160, 3), 128, dtype=np.uint8)
    with pytest.raises(InputError, match="too little texture"):
        track_quad([(1, flat), (2, flat)], 1, np.array([[20, 20], [100, 20], [100, 90], [20, 90]], dtype=float))
    with pytest.raises(InputError, match="not convex"):
        track_quad([(1, flat)], 1, np.array([[20, 20], [100, 90], [100, 20], [20, 90]], dtype=float))


@pytest.mark.parametrize("kind", ["pan", "push", "roll"])
def test_camera_motion_matches_a_known_pan_push_and_roll_despite_a_moving_actor(kind: str) -> None:
    from engine.analysis.camera import reprojection_error, track_camera

    scene = scenes.camera_scene(kind, count=12, foreground=True)
    frames = [(1001 + i, f) for i, f in enumerate(scene.frames)]
    motion = track_camera(frames, 1001)
    errors = [reprojection_error(motion.homographies[1001 + i], truth, 640, 360) for i, truth in enumerate(scene.truth)]
    assert np.mean(errors) < 0.5, f"{kind}: reprojection errors {np.round(errors, 2)}"


def test_similarity_to_nuke_transform_reproduces_the_motion() -> None:
    from engine.analysis.nuke_export import similarity_to_nuke

    # 10 degrees clockwise on screen (y down), scale 1.2, about (100, 50), then moved by (30, -20).
    a = np.radians(10.0)
    linear = 1.2 * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    centre = np.array([100.0, 50.0])
    offset = centre + np.array([30.0, -20.0]) - linear @ centre
    tx, ty, rotate, scale = similarity_to_nuke(np.hstack([linear, offset[:, None]]), 200, 100)
    # Nuke's y is up, so a clockwise turn on screen is a negative rotate and a move up the
    # screen (y -20) is +20 in Nuke.
    assert scale == pytest.approx(1.2) and rotate == pytest.approx(-10.0)
    assert (tx, ty) == pytest.approx((30.0, 20.0))


def _png_plate(folder: Path, frames: list[np.ndarray]) -> str:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"shot.{1001 + i:04d}.png"), frame[..., ::-1])
    return str(folder / "shot.####.png")


def test_track_planar_and_camera_commands_write_nuke_and_json(tmp_path: Path, planar_scene) -> None:
    from engine.analysis.nuke_export import check_braces, parse_curve

    plate = _png_plate(tmp_path / "planar", planar_scene.frames[:6])
    quad = planar_scene.corners[2]
    args = ["track", "planar", plate, "--quad", ",".join(f"{v:.3f}" for v in quad.ravel()), "--frame", "1003",
            "--out", str(tmp_path / "pin.nk"), "--out", str(tmp_path / "pin.json"), "--progress", "none"]
    assert main(args) == 0
    data = json.loads((tmp_path / "pin.json").read_text())
    assert data["reference_frame"] == 1003 and [f["frame"] for f in data["frames"]] == list(range(1001, 1007))
    for entry, truth in zip(data["frames"], planar_scene.corners[:6]):
        assert np.linalg.norm(np.array(entry["corners"]) - truth, axis=1).mean() < 1.0
    text = (tmp_path / "pin.nk").read_text()
    check_braces(text)
    assert "CornerPin2D {" in text
    to1 = re.search(r"to1 \{(\{curve[^}]*\}) (\{curve[^}]*\})\}", text)
    xs, ys = parse_curve(to1.group(1)), parse_curve(to1.group(2))
    assert sorted(xs) == list(range(1001, 1007))
    assert xs[1003] == pytest.approx(quad[0, 0], abs=0.01) and ys[1003] == pytest.approx(360 - quad[0, 1], abs=0.01)
    assert re.search(r"from1 \{[-\d.]+ [-\d.]+\}", text)

    scene = scenes.camera_scene("roll", count=6, foreground=False)
    plate = _png_plate(tmp_path / "camera", scene.frames)
    assert main(["track", "camera", plate, "--out", str(tmp_path / "cam.nk"), "--out", str(tmp_path / "cam.json"),
                 "--progress", "none"]) == 0
    text = (tmp_path / "cam.nk").read_text()
    check_braces(text)
    rotate = parse_curve(re.search(r"rotate (\{curve[^}]*\})", text).group(1))
    # The scene turns 12 degrees clockwise on screen over the shot: -12 in Nuke's rotate (y up).
    assert rotate[1006] == pytest.approx(-12.0, abs=0.3) and rotate[1001] == pytest.approx(0.0, abs=1e-6)
    data = json.loads((tmp_path / "cam.json").read_text())
    assert data["format"] == "retake-camera-motion" and len(data["frames"]) == 6
