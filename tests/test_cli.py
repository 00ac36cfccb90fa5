"""The ``retake`` command as a user and a farm run it: exit codes, messages, progress, kill -9."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.plate_factory import checksums, write_plate

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def retake(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def write_job(tmp_path: Path, plate: str, out: str, **extra) -> Path:
    job = {"plate": {"path": plate}, "transform": {"name": "grade"},
           "keyframes": [{"frame": 1001, "grade": {}}, {"frame": 1004, "grade": {"slope": [1.3, 1.0, 0.7]}}],
           "output": {"path": out}, **extra}
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    return path


def test_validate_ok_and_bad(tmp_path):
    good = write_job(tmp_path, "p.####.exr", "o.####.exr")
    result = retake("validate", str(good))
    assert result.returncode == 0 and "valid job" in result.stdout
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"plate": {"path": "p.exr"}, "transform": "grade", "output": {"path": "o.exr"},
                               "controls": {"motion": 10}}))
    result = retake("validate", str(bad))
    assert result.returncode == 2
    assert "$.controls.motion: 10" in result.stderr and str(bad) in result.stderr
    assert "Traceback" not in result.stderr


def test_run_with_json_progress(tmp_path):
    plate = write_plate(tmp_path / "plate", count=4)
    job = write_job(tmp_path, plate, str(tmp_path / "out" / "r.####.exr"))
    result = retake("run", str(job), "--progress", "json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["event"] == "start" and events[0]["total"] == 4 and events[0]["device"] == "cpu"
    frames = [e for e in events if e["event"] == "frame"]
    assert [e["frame"] for e in frames] == [1001, 1002, 1003, 1004]
    assert all(e["fps"] > 0 for e in frames) and frames[-1]["eta_s"] == 0
    assert events[-1]["event"] == "done" and events[-1]["rendered"] == 4


def test_run_errors_are_exit_2_with_file_frame_and_hint(tmp_path):
    plate = write_plate(tmp_path / "plate", count=4)
    os.remove(plate.replace("####", "1002"))
    job = write_job(tmp_path, plate, str(tmp_path / "out" / "r.####.exr"))
    result = retake("run", str(job), "--progress", "json")
    assert result.returncode == 2
    error = json.loads(result.stdout.splitlines()[-1])
    assert error["event"] == "error" and error["frame"] == 1002 and "plate.1002.exr" in error["path"]
    assert "missing" in result.stderr and "Traceback" not in result.stderr


def test_kill_minus_9_then_rerun_finishes_identically(tmp_path):
    plate = write_plate(tmp_path / "plate", count=40, width=640, height=360)
    before = checksums(tmp_path / "plate")
    out = tmp_path / "out"
    job = write_job(tmp_path, plate, str(out / "r.####.exr"))
    # The uninterrupted reference: the same job, moved aside afterwards.
    assert retake("run", str(job), "--progress", "none").returncode == 0
    out.rename(tmp_path / "ref")
    process = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(job), "--progress", "json"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seen = 0
    assert process.stdout is not None
    for line in process.stdout:  # kill in the middle of the render, right after a frame landed
        if json.loads(line)["event"] == "frame":
            seen += 1
            if seen == 5:
                process.send_signal(signal.SIGKILL)
                break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    finished = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert 5 <= len(finished) < 40, finished
    result = retake("run", str(job), "--progress", "json")
    assert result.returncode == 0, result.stderr
    done = json.loads(result.stdout.splitlines()[-1])
    assert done["skipped"] >= 5 and done["rendered"] + done["skipped"] == 40
    for frame in range(1001, 1041):
        assert (out / f"r.{frame}.exr").read_bytes() == (tmp_path / "ref" / f"r.{frame}.exr").read_bytes(), frame
    assert not [p for p in out.iterdir() if "retake-tmp" in p.name], "temporary files left behind"
    assert checksums(tmp_path / "plate") == before


def test_sigterm_cancels_between_frames(tmp_path):
    plate = write_plate(tmp_path / "plate", count=40, width=640, height=360)
    job = write_job(tmp_path, plate, str(tmp_path / "out" / "r.####.exr"))
    process = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(job), "--progress", "json"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if json.loads(line)["event"] == "frame":
            process.send_signal(signal.SIGTERM)
            break
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "cancelled" in stderr


def test_info_on_beachball_sequence():
    if not (DATA / "exr" / "beachball").is_dir():
        pytest.skip("../shared/data is absent")
    result = retake("info", str(DATA / "exr" / "beachball" / "singlepart.####.exr"), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert (info["first"], info["last"], info["count"]) == (1, 8, 8)
    assert (info["width"], info["height"]) == (2048, 1556)


def test_info_on_a_missing_plate_is_exit_2(tmp_path):
    result = retake("info", str(tmp_path / "nothing.####.exr"))
    assert result.returncode == 2 and "Traceback" not in result.stderr and "nothing" in result.stderr


def test_demo_runs_offline_and_says_where_to_look(tmp_path):
    started = time.perf_counter()
    result = retake("demo", "--out", str(tmp_path / "demo"), "--frames", "6")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "demo" / "contact_sheet.png").stat().st_size > 10_000
    assert len(list((tmp_path / "demo" / "render").glob("retake.*.exr"))) == 6
    assert "contact sheet" in result.stdout and str(tmp_path / "demo") in result.stdout
    again = retake("demo", "--out", str(tmp_path / "demo"), "--frames", "6")
    assert again.returncode == 0 and "0 rendered, 6 already done" in again.stdout
    assert time.perf_counter() - started < 240
