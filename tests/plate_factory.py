"""Small synthetic plates for tests: ACES2065-1 EXR sequences with known pixels."""
from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import numpy as np

from engine.io.aces_exr import write_exr
from engine.io.header import AP0
from engine.timecode import offset_timecode


def plate_pixels(frame: int, width: int, height: int) -> np.ndarray:
    """(H, W, 3) float32 ACES2065-1: a ramp that moves with the frame, with HDR values up to 8.0."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    r = (xs + frame) % width / width * 4.0
    g = ys / height * 2.0
    b = np.full_like(r, 0.18) + 8.0 * ((xs - frame) % 17 == 0)
    return np.stack([r, g, b], axis=-1).astype(np.float32)


def write_plate(folder: Path, first: int = 1001, count: int = 8, width: int = 64, height: int = 48,
                fps: Fraction = Fraction(25), timecode: str | None = "10:00:00:00", name: str = "plate") -> str:
    """Write an ACES container EXR sequence; returns its ``####`` pattern."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        frame = first + i
        write_exr(str(folder / f"{name}.{frame:04d}.exr"), plate_pixels(frame, width, height),
                  chromaticities=AP0, aces_container=True, fps=fps,
                  timecode=offset_timecode(timecode, i, fps) if timecode else None, frame=frame)
    return str(folder / f"{name}.####.exr")


def checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``: inputs must be byte-identical after a run."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}
