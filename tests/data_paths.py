"""Where the shared test data lives, and small EXR writers for tests.

The data folder is the repository root's sibling ``shared/data``; tests that
need it skip with a clear reason when it is absent.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
EXR_DATA = SHARED_DATA / "exr"


def require_data(*parts: str) -> Path:
    """The path under shared/data, or skip the test when it is not there."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data not found at {path} (the repository's sibling shared/data)")
    return path


def write_exr(path: Path, rgb: np.ndarray, header: dict | None = None) -> Path:
    """Write (H, W, 3|4) pixels as a scanline EXR with OpenEXR directly (float16 unless float32 given)."""
    import OpenEXR

    values = np.ascontiguousarray(rgb if rgb.dtype == np.float32 else rgb.astype(np.float16))
    channels = {"RGBA" if values.shape[2] == 4 else "RGB": values}
    head = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    head.update(header or {})
    OpenEXR.File(head, channels).write(str(path))
    return path
