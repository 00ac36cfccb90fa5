"""The pictures the ``vfx`` and ``environment`` examples need beyond the demo's plate and keys.

    .venv/bin/python examples/make_assets.py [JOB.json ...]   # default: vfx_job.json, environment_job.json

Run it after ``./setup.sh`` (or ``retake demo``) has made ``retake_demo/plate``. Each job
file names the pictures it reads; this script makes the ones under ``assets/``, from what
the job says (its plate, its keyframes' frames), so they always fit the plate it runs on:

* ``vfx`` — for each keyframe, the plate's frame with an effect painted on it as an artist
  would in a paint package: a glowing mark on the field (HDR: 4.0 of added light at its
  heart), and its matte in the alpha (1 at the mark, 0 beyond three radii), so the output
  carries the effect isolated in its own alpha. The mark sits where the demo's ball never
  passes over it;
* ``environment`` — a new setting: a dusk sky over dark ridges, 1.5x the plate's width and
  1.15x its height (the camera's pan and rise reveal what lies beyond the reference
  frame: ``camera_transfer`` centres a larger picture as overscan).

Pictures are written as ACEScg EXR (AP1 chromaticities), atomically; the plate is read in
its own colour space and brought to ACEScg through OpenColorIO.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine.colour import Colour  # noqa: E402
from engine.io.aces_exr import write_exr  # noqa: E402
from engine.io.atomic import atomic_output  # noqa: E402
from engine.io.header import AP1  # noqa: E402
from engine.io.plates import open_plate  # noqa: E402

HERE = Path(__file__).resolve().parent
GLOW_AT = (0.45, 0.85)       # the mark's place on a keyframe, a share of the frame's (width, height): the field
GLOW_RADIUS = 1.0 / 80.0      # its radius (a Gaussian's sigma), a share of the frame's width (12 px of 960)
GLOW_COLOUR = np.array([4.0, 2.2, 0.6], np.float32)   # added ACEScg light at its centre: a warm, HDR glow


def glow_matte(width: int, height: int) -> np.ndarray:
    """(height, width) float32 0..1: the painted mark's matte, a Gaussian cut to exactly 0 at three
    radii (an artist's soft brush: nothing stray far from the stroke)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    radius = GLOW_RADIUS * width
    r2 = ((xs - GLOW_AT[0] * width) ** 2 + (ys - GLOW_AT[1] * height) ** 2) / radius ** 2
    return np.where(r2 < 9.0, np.exp(-r2 / 2.0), 0.0).astype(np.float32)


def glow_keyframe(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) ACEScg plate frame -> (H, W, 4) ACEScg keyframe: the glow painted over it, its matte in alpha."""
    height, width = frame.shape[:2]
    matte = glow_matte(width, height)
    rgb = frame[..., :3] + matte[..., None] * GLOW_COLOUR
    return np.concatenate([rgb, matte[..., None]], axis=-1).astype(np.float32)


def _noise(rng: np.random.Generator, width: int, height: int, cell: int) -> np.ndarray:
    """(height, width) float32 smooth value noise in about -1..1, features of ``cell`` px."""
    grid = rng.normal(0, 1, (height // cell + 2, width // cell + 2)).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def dusk_environment(width: int, height: int, seed: int = 3) -> np.ndarray:
    """(height, width, 3) float32 ACEScg: a dusk sky (a low sun at 12.0) over dark, textured ridges."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    up = 1.0 - ys / height
    sky = (up[..., None] * np.array([0.10, 0.14, 0.42], np.float32)
           + (1.0 - up[..., None]) * np.array([1.2, 0.45, 0.18], np.float32))
    clouds = np.clip(_noise(rng, width, height, 48) + 0.5 * _noise(rng, width, height, 16), 0.0, None)
    sky = sky * (1.0 + 0.35 * clouds[..., None])
    sun = np.hypot(xs - 0.62 * width, ys - 0.55 * height)
    sky += (12.0 * (sun < 0.02 * width) + 1.5 * np.exp(-(sun / (0.12 * width)) ** 2))[..., None] * \
        np.array([1.0, 0.7, 0.4], np.float32)
    ridge = height * (0.62 + 0.06 * np.sin(xs / (0.07 * width)) + 0.03 * _noise(rng, width, 1, 64)[0])
    rock = 0.03 + 0.02 * (_noise(rng, width, height, 6) + _noise(rng, width, height, 24))
    ground = rock[..., None] * np.array([1.0, 0.8, 0.7], np.float32) * (1.0 + 2.0 * (ys / height)[..., None])
    image = np.where((ys > ridge)[..., None], np.clip(ground, 0.0, None), sky)
    return image.astype(np.float32)


def _write(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(str(path)) as tmp:
        write_exr(tmp, pixels, chromaticities=AP1, aces_container=False, metadata={"retake/example": "make_assets"})


def write_assets(job_path: Path, colour: Colour | None = None) -> list[Path]:
    """Write the pictures under ``assets/`` that the job at ``job_path`` reads; returns their paths
    (none for a job that reads no such picture)."""
    spec = json.loads(Path(job_path).read_text())
    base = Path(job_path).resolve().parent
    name = spec["transform"]["name"]
    wanted = []
    if name == "vfx":
        wanted = [((base / key["image"]).resolve(), int(key["frame"]))
                  for key in spec.get("keyframes", []) if "image" in key]
    elif name == "environment":
        wanted = [((base / spec["transform"]["image"]).resolve(), None)]
    wanted = [(path, frame) for path, frame in wanted if "assets" in path.parts]
    if not wanted:
        return []
    colour = colour or Colour()
    plate_spec = spec["plate"]
    written = []
    with open_plate(str(base / plate_spec["path"])) as plate:
        width, height = plate.info.width, plate.info.height
        space = plate_spec.get("colorspace", "ACES2065-1")
        for path, frame in wanted:
            if frame is None:
                picture = dusk_environment(int(round(1.5 * width)), int(round(1.15 * height)))
            else:
                source = colour.to_working(np.ascontiguousarray(plate.read(frame)[..., :3], dtype=np.float32), space)
                picture = glow_keyframe(source)
            _write(path, picture)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("jobs", nargs="*", type=Path,
                        default=[HERE / "vfx_job.json", HERE / "environment_job.json"])
    args = parser.parse_args(argv)
    colour = Colour()
    for job in args.jobs:
        for path in write_assets(job, colour):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
