"""``retake demo``: a plate, keyframes and a job made here, rendered, with a contact sheet.

The plate is procedural and HDR so it exercises what real plates do: a
textured landscape under a sky with a sun far above 1.0, a camera that pans,
rises and pushes in, and a glossy ball crossing the frame with a specular
highlight. It is written as an ACES2065-1 EXR sequence on frames 1001-1048 at
24 fps, timecode 01:00:00:00, like a plate from a studio's pipeline.

The "artist" then restyles three frames (first, about 40 % in, last) the way a
paint or grading package would: an ink-and-wash look (edge-preserving smoothing,
inked edges) under a different grade on each (as shot, golden hour, moonlit night),
written as ACEScg EXR keyframes. The job propagates them across the plate with the
``propagate`` transformation. Nothing is downloaded and nothing outside the demo
folder is touched.
"""
from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np

from engine.colour import Colour
from engine.io.aces_exr import write_exr
from engine.io.atomic import atomic_output
from engine.io.header import AP0
from engine.job import load_job
from engine.pipeline import RunOptions, RunResult, run_job

FIRST_FRAME = 1001
WIDTH, HEIGHT = 960, 540
FPS = Fraction(24)
START_TIMECODE = "01:00:00:00"
PLATE_VERSION = "demo-plate-1"
KEYS_VERSION = "demo-keys-1"

# The three looks the "artist" paints, as ASC CDL in ACEScct (OpenColorIO).
LOOKS: dict[str, dict[str, Any]] = {
    "as shot, ink and wash": {},
    "golden hour, ink and wash": {"slope": [1.18, 1.0, 0.78], "offset": [0.01, 0.0, -0.01],
                                  "power": [0.95, 1.0, 1.05], "saturation": 1.15},
    "moonlit night, ink and wash": {"slope": [0.45, 0.55, 0.9], "offset": [-0.02, -0.01, 0.02],
                                    "power": [1.15, 1.1, 1.0], "saturation": 0.7},
}


def _value_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """A tileable grid of random values, (size, size) float32 in 0..1."""
    return rng.random((size, size), dtype=np.float32)


def _sample(grid: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear, wrapping lookup of ``grid`` at continuous coordinates (same shape as u)."""
    n = grid.shape[0]
    u0 = np.floor(u).astype(np.int64)
    v0 = np.floor(v).astype(np.int64)
    fu = (u - u0).astype(np.float32)
    fv = (v - v0).astype(np.float32)
    fu = fu * fu * (3 - 2 * fu)
    fv = fv * fv * (3 - 2 * fv)
    a = grid[v0 % n, u0 % n]
    b = grid[v0 % n, (u0 + 1) % n]
    c = grid[(v0 + 1) % n, u0 % n]
    d = grid[(v0 + 1) % n, (u0 + 1) % n]
    return (a * (1 - fu) + b * fu) * (1 - fv) + (c * (1 - fu) + d * fu) * fv


def _fbm(grid: np.ndarray, x: np.ndarray, y: np.ndarray, octaves: int = 5) -> np.ndarray:
    total = np.zeros_like(x, dtype=np.float32)
    amplitude, frequency, norm = 1.0, 1.0, 0.0
    for _ in range(octaves):
        total += amplitude * _sample(grid, x * frequency, y * frequency)
        norm += amplitude
        amplitude *= 0.5
        frequency *= 2.03
    return total / norm


def render_plate_frame(index: int, count: int, grids: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Frame ``index`` of ``count`` of the demo scene: (HEIGHT, WIDTH, 3) float32, scene-linear ACEScg."""
    t = index / max(1, count - 1)
    ground_grid, sky_grid = grids
    # Camera: pan right, rise a little and push in 12% over the shot (world units = pixels at zoom 1).
    zoom = 1.0 + 0.12 * t
    cam_x = 400.0 * t
    cam_y = -25.0 * t
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    wx = (xs - WIDTH / 2) / zoom + WIDTH / 2 + cam_x
    wy = (ys - HEIGHT / 2) / zoom + HEIGHT / 2 + cam_y

    # Sky: a gradient with soft cloud texture, and a sun far above 1.0.
    horizon = 300.0 + 28.0 * np.sin(wx / 97.0) + 14.0 * np.sin(wx / 31.0 + 1.3) + 40.0 * (_fbm(sky_grid, wx / 180, 0 * wx) - 0.5)
    height_above = np.clip((horizon - wy) / 300.0, 0.0, 1.0)[..., None]
    sky = (1 - height_above) * np.array([1.10, 0.95, 0.80], np.float32) + height_above * np.array([0.18, 0.32, 0.85], np.float32)
    clouds = np.clip(_fbm(sky_grid, wx / 120.0, wy / 45.0) - 0.45, 0, 1)[..., None] * 2.2
    sky = sky * (1 - clouds * 0.4) + clouds * np.array([1.4, 1.4, 1.45], np.float32)
    sun_d = np.hypot(wx - 620.0, wy - 150.0)
    sun = 40.0 * (sun_d < 22.0) + 3.0 * np.exp(-((sun_d / 90.0) ** 2))
    sky = sky + sun[..., None] * np.array([1.0, 0.92, 0.75], np.float32)

    # Ground: textured fields with rows that show the camera's parallax.
    depth = np.clip((wy - horizon) / 240.0, 0.02, 1.0)
    gx = wx / (30.0 * depth + 8.0)
    gy = wy / 14.0
    texture = _fbm(ground_grid, gx, gy)
    rows = 0.5 + 0.5 * np.sin(wx / (12.0 + 40.0 * (1 - depth)) + texture * 3.0)
    base = np.array([0.10, 0.16, 0.05], np.float32) + texture[..., None] * np.array([0.18, 0.20, 0.06], np.float32)
    ground = base * (0.6 + 0.6 * rows[..., None]) * (0.5 + 0.8 * depth[..., None])
    is_sky = (wy < horizon)[..., None]
    image = np.where(is_sky, sky, ground).astype(np.float32)

    # A glossy red ball crossing right to left with a bounce (moves against the camera).
    bx = WIDTH * (0.85 - 0.7 * t)
    by = 400.0 - 120.0 * abs(np.sin(np.pi * 2.5 * t))
    radius = 58.0
    dx, dy = (xs - bx) / radius, (ys - by) / radius
    r2 = dx * dx + dy * dy
    inside = r2 < 1.0
    nz = np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))
    light = np.array([0.5, -0.6, 0.62], np.float32)
    light /= np.linalg.norm(light)
    lambert = np.clip(dx * light[0] + dy * light[1] + nz * light[2], 0.0, 1.0)
    half = light + np.array([0, 0, 1], np.float32)
    half /= np.linalg.norm(half)
    spec = np.clip(dx * half[0] + dy * half[1] + nz * half[2], 0.0, 1.0) ** 60 * 25.0
    ball = lambert[..., None] * np.array([0.65, 0.06, 0.04], np.float32) + 0.03 + spec[..., None]
    shadow = np.exp(-(((xs - bx - 20) / (radius * 1.2)) ** 2 + ((ys - 465.0) / 12.0) ** 2)) * 0.6
    image = image * (1.0 - shadow[..., None] * (~is_sky))
    image = np.where(inside[..., None], ball, image)
    return image.astype(np.float32)


def write_demo_plate(folder: Path, count: int, colour: Colour) -> str:
    """Write the demo plate (ACES2065-1 EXR container sequence) once; returns its pattern."""
    folder.mkdir(parents=True, exist_ok=True)
    pattern = str(folder / "plate.####.exr")
    stamp = folder / ".retake-demo-plate.json"
    wanted = {"version": PLATE_VERSION, "frames": count, "size": [WIDTH, HEIGHT]}
    names = [folder / f"plate.{FIRST_FRAME + i:04d}.exr" for i in range(count)]
    if stamp.exists() and json.loads(stamp.read_text()) == wanted and all(n.exists() for n in names):
        return pattern  # unchanged, so a second demo run resumes instead of re-rendering
    rng = np.random.default_rng(7)
    grids = (_value_noise(rng, 256), _value_noise(rng, 256))
    from engine.timecode import offset_timecode

    for i, name in enumerate(names):
        aces = colour.from_working(render_plate_frame(i, count, grids), "ACES2065-1")
        with atomic_output(str(name)) as tmp:
            write_exr(tmp, aces, chromaticities=AP0, aces_container=True, fps=FPS,
                      timecode=offset_timecode(START_TIMECODE, i, FPS), frame=FIRST_FRAME + i,
                      metadata={"retake/demo": PLATE_VERSION})
    with atomic_output(str(stamp)) as tmp:
        Path(tmp).write_text(json.dumps(wanted))
    return pattern


def key_frames(count: int) -> list[int]:
    """The frames the "artist" restyles: first, about 40 % in, last (fewer on a very short plate)."""
    last = FIRST_FRAME + count - 1
    return sorted({FIRST_FRAME, FIRST_FRAME + (count - 1) * 2 // 5, last})


def restyle(working: np.ndarray, colour: Colour, look: dict[str, Any]) -> np.ndarray:
    """The demo's stand-in for an artist's paint: (H, W, 3) ACEScg -> (H, W, 3) ACEScg.

    In ACEScct (OpenColorIO): edge-preserving smoothing and inked edges, then the look's CDL.
    """
    import cv2

    code = colour.convert(np.ascontiguousarray(working[..., :3], dtype=np.float32), "ACEScg", "ACEScct")
    smooth = cv2.bilateralFilter(np.ascontiguousarray(code, dtype=np.float32), d=7, sigmaColor=0.06, sigmaSpace=3.0)
    luma = smooth @ np.array([0.2722, 0.6741, 0.0537], dtype=np.float32)
    edges = np.hypot(cv2.Sobel(luma, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(luma, cv2.CV_32F, 0, 1, ksize=3))
    inked = smooth - np.clip((edges - 0.06) * 2.0, 0.0, 0.25)[..., None]
    styled = colour.convert(np.ascontiguousarray(inked, dtype=np.float32), "ACEScct", "ACEScg")
    return colour.cdl(styled, **look) if look else styled


def write_demo_keyframes(folder: Path, plate_folder: Path, count: int, colour: Colour) -> list[str]:
    """Write the restyled keyframes (ACEScg EXR, AP1 chromaticities) once; returns their paths."""
    from engine.io.header import AP1

    folder.mkdir(parents=True, exist_ok=True)
    frames = key_frames(count)
    names = [folder / f"key.{f:04d}.exr" for f in frames]
    stamp = folder / ".retake-demo-keys.json"
    wanted = {"version": KEYS_VERSION, "plate": PLATE_VERSION, "frames": frames, "size": [WIDTH, HEIGHT]}
    if stamp.exists() and json.loads(stamp.read_text()) == wanted and all(n.exists() for n in names):
        return [str(n) for n in names]
    from engine.io.exr import read_image

    for frame, name, look in zip(frames, names, LOOKS.values()):
        source = colour.to_working(read_image(str(plate_folder / f"plate.{frame:04d}.exr"))[..., :3], "ACES2065-1")
        with atomic_output(str(name)) as tmp:
            write_exr(tmp, restyle(source, colour, look), chromaticities=AP1, aces_container=False, frame=frame,
                      metadata={"retake/demo": KEYS_VERSION})
    with atomic_output(str(stamp)) as tmp:
        Path(tmp).write_text(json.dumps(wanted))
    return [str(n) for n in names]


def demo_job(count: int) -> dict[str, Any]:
    """The demo's job spec: three restyled keyframes propagated across the plate."""
    return {
        "version": 1,
        "plate": {"path": "plate/plate.####.exr", "colorspace": "ACES2065-1"},
        "keyframes": [{"frame": f, "image": f"keys/key.{f:04d}.exr", "colorspace": "ACEScg", "prompt": prompt}
                      for f, prompt in zip(key_frames(count), LOOKS)],
        "controls": {"motion": 5, "structure": 5},
        "transform": {"name": "propagate"},
        "output": {"path": "render/retake.####.exr", "format": "exr", "resolution": "source"},
        "seed": 0,
    }


def contact_sheet(before: list[np.ndarray], after: list[np.ndarray], colour: Colour, path: str) -> None:
    """Before (top row) and after (bottom row), through the sRGB ACES 2.0 view, as an 8-bit PNG.

    ``before``/``after``: lists of (H, W, 3) float32 ACEScg frames of equal size.
    """
    import OpenImageIO as oiio

    gap = 8
    rows = []
    for images in (before, after):
        shown = [np.clip(colour.to_display(img, "sRGB - Display", "ACES 2.0 - SDR 100 nits (Rec.709)"), 0, 1)
                 for img in images]
        spacer = np.ones((shown[0].shape[0], gap, 3), np.float32)
        row = shown[0]
        for img in shown[1:]:
            row = np.concatenate([row, spacer, img], axis=1)
        rows.append(row)
    sheet = np.concatenate([rows[0], np.ones((gap, rows[0].shape[1], 3), np.float32), rows[1]], axis=0)
    buf = oiio.ImageBuf(np.ascontiguousarray(sheet))
    with atomic_output(path) as tmp:
        if not buf.write(tmp, "uint8"):
            raise RuntimeError(f"could not write the contact sheet: {buf.geterror()}")


def run_demo(out: str, *, frames: int = 48, device: str = "auto",
             progress: Callable[[dict[str, Any]], None] | None = None) -> RunResult:
    """Make the demo plate and job under ``out``, render it, write a contact sheet, say where to look."""
    from engine.io.plates import open_plate
    from engine.resize import resize
    from engine.device import choose_device

    if frames < 2:
        raise ValueError("the demo needs at least 2 frames")
    folder = Path(out).resolve()
    colour = Colour()
    write_demo_plate(folder / "plate", frames, colour)
    write_demo_keyframes(folder / "keys", folder / "plate", frames, colour)
    job_path = folder / "job.json"
    with atomic_output(str(job_path)) as tmp:
        Path(tmp).write_text(json.dumps(demo_job(frames), indent=2) + "\n")
    job = load_job(job_path)
    result = run_job(job, RunOptions(device=device, progress=progress))

    torch_device = choose_device(device)
    picks = [FIRST_FRAME + round(i * (frames - 1) / 3) for i in range(4)]
    before, after = [], []
    with open_plate(job.plate.path) as plate, open_plate(job.output.path) as rendered:
        for frame in picks:
            for source, images in ((plate, before), (rendered, after)):
                working = colour.to_working(source.read(frame)[..., :3], "ACES2065-1")
                images.append(resize(working, 320, 180, torch_device))
    sheet = str(folder / "contact_sheet.png")
    contact_sheet(before, after, colour, sheet)
    print(
        "\nRetake demo done.\n"
        f"  source plate : {job.plate.path}  (ACES2065-1 EXR, {FIRST_FRAME}-{FIRST_FRAME + frames - 1}, 24 fps)\n"
        f"  keyframes    : {folder / 'keys'}  (restyled by the demo at {', '.join(map(str, key_frames(frames)))})\n"
        f"  job          : {job_path}\n"
        f"  result plate : {job.output.path}  ({len(result.rendered)} rendered, {len(result.skipped)} already done)\n"
        f"  contact sheet: {sheet}  (top: source, bottom: result; frames {', '.join(map(str, picks))})\n"
        f"  next         : retake info {job.output.path}   |   retake run {job_path}",
        flush=True,
    )
    return result
