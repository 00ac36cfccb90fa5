"""``retake track faces``: an ACES EXR plate of real faces in, JSON / Nuke .nk / CSV out."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from engine.analysis import models
from engine.cli import main
from tests import analysis_scenes as scenes

FIRST = 1001
COUNT = 6


def _require_models() -> None:
    bad = [s for s in models.model_status() if s.state != "ok"]
    if bad:
        pytest.skip(f"analysis models not installed ({bad[0].spec.name}: {bad[0].state}); "
                    "run `retake models --install` (./setup.sh does it)")


def _places(i: int) -> list[scenes.Placement]:
    return [scenes.Placement(200 + 6 * i, 180, 120), scenes.Placement(470, 170 - 3 * i, 100, 10)]


@pytest.fixture(scope="module")
def face_plate(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Six frames (1001-1006) of two moving faces as an ACES2065-1 container EXR sequence."""
    from engine.colour import Colour
    from engine.io.aces_exr import write_exr
    from engine.io.header import AP0

    folder = tmp_path_factory.mktemp("faces")
    colour = Colour()
    back = scenes.background(640, 360)
    for i in range(COUNT):
        srgb = scenes.render(back, _places(i)).astype(np.float32) / 255.0
        aces = colour.convert(srgb, "sRGB Encoded Rec.709 (sRGB)", "ACES2065-1")
        write_exr(str(folder / f"plate.{FIRST + i:04d}.exr"), aces, chromaticities=AP0, aces_container=True,
                  frame=FIRST + i)
    return str(folder / "plate.####.exr")


@pytest.fixture(scope="module")
def exported(face_plate: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    _require_models()
    out = tmp_path_factory.mktemp("out")
    paths = {ext: out / f"faces.{ext}" for ext in ("json", "nk", "csv")}
    code = main(["track", "faces", face_plate, "--progress", "none", *[a for p in paths.values() for a in ("--out", str(p))]])
    assert code == 0
    return paths


def test_json_has_every_face_on_the_plates_frames(exported: dict[str, Path]) -> None:
    data = json.loads(exported["json"].read_text())
    assert data["format"] == "retake-face-tracks" and (data["width"], data["height"]) == (640, 360)
    assert [f["frame"] for f in data["frames"]] == list(range(FIRST, FIRST + COUNT))
    assert [f["id"] for f in data["faces"]] == [1, 2]
    for i, entry in enumerate(data["frames"]):
        assert sorted(face["id"] for face in entry["faces"]) == [1, 2]
        for face in entry["faces"]:
            landmarks = np.array(face["landmarks"])
            assert landmarks.shape == (468, 3)
            assert set(face["head_pose"]) == {"yaw", "pitch", "roll", "matrix"} and 0.5 < face["confidence"] <= 1
            x0, y0, x1, y1 = face["box"]
            assert x0 < landmarks[:, 0].mean() < x1 and y0 < landmarks[:, 1].mean() < y1
        # The faces are where the scene put them (through the EXR's colour round trip).
        centres = sorted(np.array(face["landmarks"])[:, :2].mean(axis=0)[0] for face in entry["faces"])
        assert centres[0] == pytest.approx(_places(i)[0].x, abs=12)
        assert centres[1] == pytest.approx(_places(i)[1].x, abs=12)


def test_json_round_trips_into_face_tracks(exported: dict[str, Path]) -> None:
    from engine.analysis.face_export import from_json

    tracks = from_json(json.loads(exported["json"].read_text()))
    assert tracks.ids() == [1, 2] and sorted(tracks.frames) == list(range(FIRST, FIRST + COUNT))
    assert tracks.faces_at(FIRST)[0].landmarks.shape == (468, 3)


def test_nuke_script_has_one_tracker_per_face_with_the_key_landmarks(exported: dict[str, Path]) -> None:
    from engine.analysis.nuke_export import check_braces, parse_curve

    text = exported["nk"].read_text()
    check_braces(text)
    assert text.startswith("set cut_paste_input [stack 0]\nversion ")
    assert text.count("Tracker4 {") == 2 and "name RetakeFace1" in text and "name RetakeFace2" in text
    data = json.loads(exported["json"].read_text())
    first_face = next(face for face in data["frames"][0]["faces"] if face["id"] == 1)
    for name, index in (("right_eye_outer", 33), ("left_eye_outer", 263), ("nose_tip", 1), ("mouth_right", 61),
                        ("mouth_left", 291), ("chin", 152)):
        row = re.search(r'"' + name + r'" (\{curve[^}]*\}) (\{curve[^}]*\})', text)
        assert row, f"no {name} track"
        xs, ys = parse_curve(row.group(1)), parse_curve(row.group(2))
        assert sorted(xs) == list(range(FIRST, FIRST + COUNT))
        # Nuke's y is up from the bottom of the frame.
        assert xs[FIRST] == pytest.approx(first_face["landmarks"][index][0], abs=1e-3)
        assert ys[FIRST] == pytest.approx(360 - first_face["landmarks"][index][1], abs=1e-3)
    assert " 1 31 8 }" in text  # 8 tracks in the 31-column table


def test_csv_has_a_row_per_face_per_frame(exported: dict[str, Path]) -> None:
    with exported["csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * COUNT
    assert {int(r["frame"]) for r in rows} == set(range(FIRST, FIRST + COUNT))
    assert "x467" in rows[0] and "z0" in rows[0] and "yaw" in rows[0]


def test_missing_models_stop_with_the_install_command(face_plate: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv("RETAKE_MODELS", raising=False)
    out = tmp_path / "faces.json"
    assert main(["track", "faces", face_plate, "--out", str(out), "--progress", "none"]) == 2
    assert "retake models --install" in capsys.readouterr().err
    assert not out.exists()


def test_unknown_output_format_is_refused_before_any_work(face_plate: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["track", "faces", face_plate, "--out", str(tmp_path / "faces.txt")]) == 2
    assert ".json" in capsys.readouterr().err


def test_preview_draws_the_tracks_over_the_plate(face_plate: str, exported: dict[str, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """What the panels show with "Show tracks": each face's landmarks in its identity's colour."""
    import OpenImageIO as oiio

    plain, marked = tmp_path / "plain.png", tmp_path / "marked.png"
    assert main(["preview", face_plate, "--frame", "1003", "--out", str(plain), "--size", "640"]) == 0
    assert main(["preview", face_plate, "--frame", "1003", "--out", str(marked), "--size", "640",
                 "--overlay", str(exported["json"])]) == 0
    a = oiio.ImageBuf(str(plain)).get_pixels(oiio.UINT8).astype(int)
    b = oiio.ImageBuf(str(marked)).get_pixels(oiio.UINT8).astype(int)
    data = json.loads(exported["json"].read_text())
    faces = next(e for e in data["frames"] if e["frame"] == 1003)["faces"]
    assert len(faces) == 2
    for face in faces:
        nose = np.asarray(face["landmarks"])[data["key_landmarks"]["nose_tip"], :2]
        x, y = int(nose[0]), int(nose[1])
        assert np.abs(b[y - 2:y + 3, x - 2:x + 3] - a[y - 2:y + 3, x - 2:x + 3]).max() > 60, face["id"]
    changed = np.abs(b - a).max(axis=2) > 0
    assert changed.mean() < 0.1 and not changed[:, :60].any()   # only over the faces, not the empty left edge
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}')
    assert main(["preview", face_plate, "--frame", "1003", "--out", str(tmp_path / "x.png"),
                 "--overlay", str(bad)]) == 2
    assert "not a Retake track file" in capsys.readouterr().err
