"""Suite-wide guard: the shared test data is read-only to Retake, byte for byte."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.data_paths import SHARED_DATA


def _checksums(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session", autouse=True)
def shared_data_is_never_written():
    if not SHARED_DATA.is_dir():
        yield
        return
    before = _checksums(SHARED_DATA)
    yield
    after = _checksums(SHARED_DATA)
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    assert not changed, f"the test run changed input files: {changed[:10]}"
