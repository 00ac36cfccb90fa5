"""The job spec: every field validated, errors that name the JSON path, the published schema."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from engine.errors import JobError
from engine.job import JOB_SCHEMA, Job, job_hash, load_job, parse_fps, parse_job

ROOT = Path(__file__).resolve().parents[1]


def minimal(**overrides):
    data = {
        "plate": {"path": "plate.####.exr"},
        "transform": {"name": "grade"},
        "output": {"path": "out/result.####.exr"},
        "keyframes": [{"frame": 1001, "grade": {"slope": [1.1, 1.0, 0.9]}}],
    }
    data.update(overrides)
    return data


def problems(data) -> str:
    with pytest.raises(JobError) as info:
        parse_job(data, base_dir="/jobs")
    return str(info.value)


def test_minimal_job_gets_documented_defaults():
    job = parse_job(minimal(), base_dir="/jobs")
    assert job.plate.path == "/jobs/plate.####.exr"
    assert job.output.path == "/jobs/out/result.####.exr"
    assert (job.controls.motion, job.controls.structure) == (5, 5)
    assert job.output.format == "exr" and job.output.resolution == "source" and job.output.compression == "none"
    assert job.transform.params == {"interpolation": "smooth"}
    assert job.keyframes[0].grade.slope == (1.1, 1.0, 0.9)
    assert job.keyframes[0].grade.power == (1.0, 1.0, 1.0)
    assert job.plate.missing == "error" and job.plate.nonfinite == "error"


def test_every_problem_is_reported_with_its_path_value_and_what_is_allowed():
    text = problems(minimal(
        controls={"motion": 12, "structure": "high"},
        output={"path": "x.exr", "format": "png", "resolution": "4k"},
        locks={"faces": "yes", "hands": True},
        keyframes=[{"frame": 1001, "strength": 2}, {"frame": 1001}],
    ))
    assert "$.controls.motion: 12 is not allowed; expected an integer from 1 to 9" in text
    assert '$.controls.structure: "high"' in text
    assert '$.output.format: "png" is not allowed; expected one of "exr", "sdr", "hdr"' in text
    assert "$.output.resolution" in text and "WIDTHxHEIGHT" in text
    assert "$.locks.faces" in text and "$.locks.hands: unknown field" in text
    assert "$.keyframes[0].strength: 2 is not allowed; expected a number from 0.0 to 1.0" in text
    assert "$.keyframes[1].frame" in text and "already keyed" in text
    assert "problem(s)" in text


def test_required_fields_and_unknown_transform():
    text = problems({"transform": {"name": "teleport"}})
    assert "$.plate: is required" in text
    assert "$.output: is required" in text
    assert '$.transform.name: "teleport" is not allowed; expected one of "grade"' in text


def test_keyframe_limit_is_64():
    keys = [{"frame": 1001 + i, "grade": {}} for i in range(65)]
    assert "at most 64 keyframes" in problems(minimal(keyframes=keys))
    assert len(parse_job(minimal(keyframes=keys[:64])).keyframes) == 64


def test_keyframe_outside_the_declared_range():
    text = problems(minimal(plate={"path": "p.####.exr", "first": 1001, "last": 1010},
                            keyframes=[{"frame": 1020, "grade": {}}]))
    assert "$.keyframes[0].frame: 1020" in text and "1001-1010" in text


def test_grade_and_look_together_is_an_error():
    text = problems(minimal(keyframes=[{"frame": 1, "grade": {}, "look": "x"}]))
    assert "$.keyframes[0]: has both grade and look" in text


def test_fps_parsing():
    assert parse_fps("24") == (24, 1)
    assert parse_fps("24000/1001") == (24000, 1001)
    assert parse_fps("23.976") == (24000, 1001)
    assert parse_fps("29.97") == (30000, 1001)
    assert parse_fps("0") is None and parse_fps("fast") is None
    assert "$.plate.fps" in problems(minimal(plate={"path": "p.exr", "fps": "fast"}))


def test_round_trip_through_to_dict_and_stable_hash():
    job = parse_job(minimal(), base_dir="/jobs")
    again = parse_job(job.to_dict())
    assert again == job
    assert job_hash(again) == job_hash(job)
    changed = parse_job(minimal(controls={"motion": 6}), base_dir="/jobs")
    assert job_hash(changed) != job_hash(job)


def test_load_job_reports_bad_json_with_file_and_line(tmp_path):
    path = tmp_path / "job.json"
    path.write_text('{"plate": {"path": "a.exr"},}')
    with pytest.raises(JobError) as info:
        load_job(path)
    assert str(path) in str(info.value) and "line 1" in str(info.value)
    with pytest.raises(JobError, match="cannot read the job file"):
        load_job(tmp_path / "absent.json")


def test_relative_paths_resolve_against_the_job_file(tmp_path):
    path = tmp_path / "shots" / "job.json"
    path.parent.mkdir()
    path.write_text(json.dumps(minimal()))
    job = load_job(path)
    assert job.plate.path == str(tmp_path / "shots" / "plate.####.exr")


def test_published_schema_is_current_and_agrees_with_the_parser():
    published = json.loads((ROOT / "engine" / "schema" / "job.schema.json").read_text())
    assert published == JOB_SCHEMA, "run `retake schema > engine/schema/job.schema.json`"
    jsonschema.Draft202012Validator.check_schema(JOB_SCHEMA)
    validator = jsonschema.Draft202012Validator(JOB_SCHEMA)
    good = minimal(controls={"motion": 9, "structure": 1}, locks={"faces": True},
                   output={"path": "o.mov", "format": "sdr", "resolution": "1920x1080"})
    assert not list(validator.iter_errors(good))
    parse_job(good)
    for bad in (minimal(controls={"motion": 0}), minimal(output={"path": "o", "format": "gif"}),
                minimal(transform={"name": "grade", "interpolation": "bouncy"}), minimal(extra=1),
                minimal(keyframes=[{"frame": 1, "strength": 1.5}])):
        assert list(validator.iter_errors(bad)), bad
        with pytest.raises(JobError):
            parse_job(bad)


def test_job_module_needs_only_the_standard_library():
    # Host panels import engine.job inside Nuke's or Resolve's Python.
    import subprocess
    import sys

    code = ("import sys; import engine.job; "
            "heavy = [m for m in ('numpy', 'torch', 'OpenImageIO', 'PyOpenColorIO') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_fps_may_be_written_as_a_number() -> None:
    from engine.job import parse_job

    base = {"output": {"path": "/o.####.exr"}, "transform": {"name": "grade"}}
    assert parse_job(dict(base, plate={"path": "/p.####.exr", "fps": 24})).plate.fps == "24"
    assert parse_job(dict(base, plate={"path": "/p.####.exr", "fps": 23.976})).plate.fps == "23.976"
    with pytest.raises(JobError, match=r"\$.plate.fps"):
        parse_job(dict(base, plate={"path": "/p.####.exr", "fps": -3}))
