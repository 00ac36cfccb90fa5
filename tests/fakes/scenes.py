"""Small plates and host scenes for the host tests: an ACEScg EXR sequence and painted keyframes.

Importable as ``tests.fakes.scenes`` (the fake host modules themselves are imported by
their real names, ``nuke`` and ``DaVinciResolveScript``, with ``tests/fakes`` on sys.path).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from engine.io.aces_exr import write_exr
from engine.io.header import AP1

FAKES = Path(__file__).resolve().parent
REPO = FAKES.parents[1]


def use_fakes() -> None:
    """Put the fake ``nuke``, ``nukescripts`` and ``DaVinciResolveScript`` first on sys.path."""
    if str(FAKES) not in sys.path:
        sys.path.insert(0, str(FAKES))


def acescg_pixels(frame: int, width: int, height: int) -> np.ndarray:
    """(H, W, 3) float32 ACEScg: a soft gradient with a bright bar that moves 1 px a frame."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 0.05 + 0.6 * xs / width
    g = 0.05 + 0.4 * ys / height
    b = np.full_like(r, 0.18)
    bar = ((xs - (frame - 1001)) % width < 4).astype(np.float32)
    return np.stack([r + 2.0 * bar, g + 1.5 * bar, b + 0.5 * bar], axis=-1).astype(np.float32)


def write_acescg_plate(folder: Path, first: int = 1001, last: int = 1048, width: int = 64, height: int = 36,
                       name: str = "plate") -> str:
    """An EXR sequence in ACEScg (AP1 chromaticities, not an ACES container); its ``####`` pattern."""
    folder.mkdir(parents=True, exist_ok=True)
    for frame in range(first, last + 1):
        write_exr(str(folder / f"{name}.{frame:04d}.exr"), acescg_pixels(frame, width, height),
                  chromaticities=AP1, aces_container=False, frame=frame)
    return str(folder / f"{name}.####.exr")


def write_painted_keys(folder: Path, frames: list[int], width: int = 64, height: int = 36,
                       name: str = "paint") -> str:
    """The artist's keyframes: the plate's frames graded warm (ACEScg); their ``####`` pattern."""
    folder.mkdir(parents=True, exist_ok=True)
    for frame in frames:
        warm = acescg_pixels(frame, width, height) * np.array([1.4, 1.0, 0.6], dtype=np.float32)
        write_exr(str(folder / f"{name}.{frame:04d}.exr"), warm, chromaticities=AP1, aces_container=False,
                  frame=frame)
    return str(folder / f"{name}.####.exr")


@pytest.fixture(autouse=True)
def no_engine_left_behind():
    """Kill any engine a test started and left running (a failed or timed-out test)."""
    yield
    from plugin.engine_process import EngineProcess

    for process in EngineProcess.running_processes():
        process.kill()
        process.wait(10)
