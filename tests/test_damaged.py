"""Every file of OpenEXR's fuzzing corpus gives a clear InputError or a description: never a crash.

Each file is read in its own subprocess (a C-library crash cannot be caught
in-process), two at a time; a file that takes longer than 20 s counts as a hang.
"""
from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.data_paths import REPO_ROOT, require_data

# `retake info --check` reads the header and decodes the pixels: it prints a
# description (exit 0) or the error (exit 2). Anything else (a traceback, a
# signal, exit 1) is a failure.
COMMAND = [sys.executable, "-m", "engine.cli", "info", "--check"]


def _run(path: Path) -> tuple[Path, subprocess.CompletedProcess[str] | None]:
    try:
        done = subprocess.run(
            [*COMMAND, str(path)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        return path, None
    return path, done


def test_every_damaged_file_gives_a_clear_answer() -> None:
    folder = require_data("exr", "damaged")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.endswith(".rst"))
    assert len(files) > 100
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_run, files))
    problems: list[str] = []
    errors = 0
    for path, done in results:
        if done is None:
            problems.append(f"{path.name}: hung (> 20 s)")
            continue
        if done.returncode not in (0, 2):
            problems.append(f"{path.name}: exit {done.returncode}\n{done.stderr[-500:]}")
        elif "Traceback" in done.stderr:
            problems.append(f"{path.name}: traceback\n{done.stderr[-500:]}")
        elif done.returncode == 2:
            errors += 1
            message = done.stdout + done.stderr
            if path.name not in message or "—" not in message:
                problems.append(f"{path.name}: message does not name the file or give a hint: {message!r}")
    assert not problems, "\n".join(problems)
    # Nearly all of the corpus is unreadable: make sure the test really read them.
    assert errors > 100
