"""Recipe contact sheets: each tracking recipe run through the real pipeline, before (top) and
after (bottom) on four frames, as PNGs to look at, with the time each run took.

    .venv/bin/python bench/recipes.py [--out retake_bench/recipes] [--frames 24]

Never part of the test suite (the tests check the same recipes against known answers in
``tests/test_recipes.py``). The plates: ``retake demo``'s procedural HDR plate (camera
move, no people) for camera_transfer, product_swap, vfx, a reframe campaign and relight; scikit-image's astronaut standing
in a panning photograph for environment, and moving in it for motion_transfer's body mode
and character; a moving face for reframe.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2  # noqa: E402

from engine import demo  # noqa: E402
from engine.colour import Colour  # noqa: E402
from engine.contact_sheet import display_frame, write_sheet  # noqa: E402
from engine.io.aces_exr import write_exr  # noqa: E402
from engine.io.exr import read_image  # noqa: E402
from engine.io.header import AP1  # noqa: E402
from engine.job import parse_job  # noqa: E402
from engine.pipeline import RunOptions, run_job  # noqa: E402
from tests import analysis_scenes as scenes  # noqa: E402

COLOUR = Colour()


def working(rgb8: np.ndarray) -> np.ndarray:
    return scenes.srgb_to_acescg(COLOUR, rgb8)


def write_plate(folder: Path, frames: list[np.ndarray]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        write_exr(str(folder / f"shot.{1001 + i:04d}.exr"), working(frame), chromaticities=AP1, aces_container=False,
                  frame=1001 + i)
    return str(folder / "shot.####.exr")


def photo(name: str, size: tuple[int, int]) -> np.ndarray:
    from skimage import data

    return cv2.resize(np.ascontiguousarray(getattr(data, name)()[..., :3]), size, interpolation=cv2.INTER_AREA)


def still(folder: Path, name: str, image: np.ndarray) -> str:
    path = folder / f"{name}.exr"
    write_exr(str(path), image, chromaticities=AP1, aces_container=False)
    return str(path)


def sheet(before: list[str], after: list[str], path: Path, height: int = 200) -> None:
    rows = [[display_frame(f, COLOUR, height) for f in files] for files in (before, after)]
    write_sheet(rows, str(path))


def run(name: str, spec: dict, out: Path, frames: int) -> None:
    spec = dict(spec, output={"path": str(out / name / "out.####.exr")})
    start = time.perf_counter()
    result = run_job(parse_job(spec), RunOptions())
    seconds = time.perf_counter() - start
    picks = [1001 + round(i * (frames - 1) / 3) for i in range(4)]
    plate = spec["plate"]["path"]
    before = [plate.replace("####", f"{f:04d}") for f in picks]
    after = [str(out / name / f"out.{f:04d}.exr") for f in picks]
    target = out / f"{name}.png"
    sheet(before, after, target)
    print(f"{name:16s} {len(result.rendered):4d} frames {seconds:7.1f} s ({len(result.rendered) / seconds:5.2f} "
          f"frames/s, analysis included)  -> {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="retake_bench/recipes")
    parser.add_argument("--frames", type=int, default=24)
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    n = args.frames
    print(f"# bench/recipes.py: {n} frames each, contact sheets in {out}")

    plate = demo.write_demo_plate(out / "demo_plate", n, COLOUR)
    painting = demo.restyle(COLOUR.to_working(read_image(plate.replace("####", "1001"))[..., :3], "ACES2065-1"),
                            COLOUR, {"slope": [0.45, 0.55, 0.9], "saturation": 0.7})
    run("camera_transfer", {"plate": {"path": plate, "colorspace": "ACES2065-1"},
                            "transform": {"name": "camera_transfer", "target": still(out, "painting", painting),
                                          "reference": 1001}}, out, n)
    run("product_swap", {"plate": {"path": plate, "colorspace": "ACES2065-1"},
                         "transform": {"name": "product_swap", "image": still(out, "product",
                                                                              working(photo("chelsea", (300, 200)))),
                                       "quad": [560, 400, 760, 400, 760, 500, 560, 500], "reference": 1001}}, out, n)

    # vfx: a glowing mark painted on one keyframe (examples/make_assets.py's brush), its matte
    # in the keyframe's alpha, carried with the scene.
    import importlib.util

    spec = importlib.util.spec_from_file_location("retake_example_assets",
                                                  Path(__file__).resolve().parents[1] / "examples" / "make_assets.py")
    assets = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(assets)  # type: ignore[union-attr]
    middle = 1000 + (n + 1) // 2
    mark = assets.glow_keyframe(COLOUR.to_working(read_image(plate.replace("####", str(middle)))[..., :3],
                                                  "ACES2065-1"))
    run("vfx", {"plate": {"path": plate, "colorspace": "ACES2065-1"}, "transform": {"name": "vfx"},
                "keyframes": [{"frame": middle, "image": still(out, "glow", mark), "colorspace": "ACEScg"}]}, out, n)

    # A global campaign: one take, four deliverables from one file (the extended 2.39:1 fills
    # what the camera saw beyond the frame), with the campaign's own summary sheet.
    from engine.campaign import load_jobs, run_campaign

    campaign = out / "campaign.json"
    campaign.write_text(json.dumps({
        "version": 1, "plate": {"path": plate, "colorspace": "ACES2065-1"},
        "transform": {"name": "reframe", "aspect": "9:16"},
        "output": {"path": str(out / "campaign" / "{variant}" / "out.####.exr"), "resolution": "draft"},
        "variants": [{"name": "vertical_9x16"}, {"name": "square_1x1", "transform": {"aspect": "1:1"}},
                     {"name": "feed_4x5", "transform": {"aspect": "4:5"}},
                     {"name": "scope_2.39", "transform": {"aspect": "2.39:1", "extend": "on"}}]}))
    start = time.perf_counter()
    results = run_campaign(load_jobs(campaign), sheet=str(out / "campaign.png"))
    print(f"{'campaign':16s} {sum(len(r.rendered) for r in results):4d} frames {time.perf_counter() - start:7.1f} s "
          f"(4 variants, analysis shared)  -> {out / 'campaign.png'}")

    run("relight", {"plate": {"path": plate, "colorspace": "ACES2065-1"},
                    "transform": {"name": "relight"},
                    "keyframes": [{"frame": 1001, "light": {"azimuth": -70, "elevation": 20, "intensity": 0.0}},
                                  {"frame": 1000 + n, "light": {"azimuth": -70, "elevation": 20, "intensity": 1.5,
                                                                "colour": [1.0, 0.7, 0.4], "softness": 0.3}}]}, out, n)

    world = scenes.camera_scene("pan", 640, 360, count=n, foreground=False)
    person = cv2.resize(scenes.astronaut(), (300, 300), interpolation=cv2.INTER_AREA)
    from engine.analysis.masks import PersonSegmenter
    cut = cv2.GaussianBlur((PersonSegmenter().raw_mask(person) > 0.5).astype(np.float32), (0, 0), 1.0)
    matte = np.zeros((360, 640), np.float32)
    matte[60:, 170:470] = cut
    standing = np.zeros((360, 640, 3), np.float32)
    standing[60:, 170:470] = person
    frames = [(b * (1 - matte[..., None]) + standing * matte[..., None] + 0.5).astype(np.uint8) for b in world.frames]
    people = write_plate(out / "person_plate", frames)
    run("environment", {"plate": {"path": people, "colorspace": "ACEScg", "fps": "24"},
                        "transform": {"name": "environment", "image": still(out, "setting",
                                                                            working(photo("chelsea", (640, 360)))),
                                      "reference": 1001}}, out, n)

    # A person who moves: the astronaut drifting right, turning 5 degrees and stepping back over
    # the panning photograph. motion_transfer's body mode drives her own reference frame, with an
    # emblem painted on, by her pose; character carries an ink-and-wash restyle of both ends
    # under the locks.
    moving = []
    for i, back in enumerate(world.frames):
        t = i / max(1, n - 1)
        m = cv2.getRotationMatrix2D((320.0, 210.0), 5.0 * t, 1.0 - 0.08 * t)
        m[0, 2] += 60.0 * t
        a = cv2.warpAffine(matte, m, (640, 360), flags=cv2.INTER_LINEAR)[..., None]
        body = cv2.warpAffine(standing, m, (640, 360), flags=cv2.INTER_LINEAR)
        moving.append((back * (1 - a) + body * a + 0.5).astype(np.uint8))
    actor = write_plate(out / "actor_plate", moving)
    look = {"slope": [1.1, 0.95, 0.8], "saturation": 1.1}
    first = demo.restyle(COLOUR.to_working(read_image(actor.replace("####", "1001"))[..., :3], "ACEScg"), COLOUR, look)
    last = demo.restyle(COLOUR.to_working(read_image(actor.replace("####", str(1000 + n)))[..., :3], "ACEScg"),
                        COLOUR, look)
    # The body mode's target must be a person the pose detector finds (a restyle or a strong
    # grade hides her from it): her reference frame with an emblem painted on her chest, which
    # must ride on her torso as she moves.
    from engine.analysis.frames import display_rgb8
    from engine.analysis.pose import PoseEstimator

    reference = COLOUR.to_working(read_image(actor.replace("####", "1001"))[..., :3], "ACEScg")
    pose = PoseEstimator(max_people=1).people(display_rgb8(COLOUR, reference))[0].landmarks
    shoulders = (pose[11, :2] + pose[12, :2]) / 2.0
    chest = shoulders + np.array([0.0, 0.35 * float(np.linalg.norm(pose[11, :2] - pose[12, :2]))])
    ys, xs = np.mgrid[0:360, 0:640] + 0.5
    emblem = (np.hypot(xs - chest[0], ys - chest[1]) < 14.0).astype(np.float32)[..., None]
    character = reference * (1 - emblem) + emblem * np.array([2.0, 0.6, 0.1], np.float32)
    run("motion_body", {"plate": {"path": actor, "colorspace": "ACEScg", "fps": "24"},
                        "transform": {"name": "motion_transfer", "mode": "body", "reference": 1001,
                                      "target": still(out, "character", character.astype(np.float32))}}, out, n)
    run("character", {"plate": {"path": actor, "colorspace": "ACEScg", "fps": "24"},
                      "transform": {"name": "character"},
                      "keyframes": [{"frame": 1001, "image": still(out, "key_first", first), "colorspace": "ACEScg"},
                                    {"frame": 1000 + n, "image": still(out, "key_last", last), "colorspace": "ACEScg"}]},
        out, n)

    back = scenes.background(640, 360, seed=5)
    xs = list(np.linspace(140, 500, n * 2 // 3)) + [500.0] * (n - n * 2 // 3)
    faces = write_plate(out / "face_plate", [scenes.render(back, [scenes.Placement(x, 170, 110)]) for x in xs])
    run("reframe_9x16", {"plate": {"path": faces, "colorspace": "ACEScg", "fps": "24"},
                         "transform": {"name": "reframe", "aspect": "9:16"}}, out, n)


if __name__ == "__main__":
    main()
