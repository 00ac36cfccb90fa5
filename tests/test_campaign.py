"""Global campaigns: one take x a matrix of variants from one job file, each output named by
its variant, validated as whole jobs, run by `retake run` with a summary contact sheet."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.campaign import parse_campaign, variant_output
from engine.errors import JobError
from engine.job import load_job
from tests.plate_factory import write_plate
from tests.test_cli import retake


def test_each_variant_is_the_job_with_its_fields_replaced_and_its_own_output() -> None:
    spec = {"plate": {"path": "/shots/p.####.exr"}, "output": {"path": "/out/sh010.####.exr", "format": "exr"},
            "transform": {"name": "reframe", "aspect": "9:16", "subject": "faces"},
            "variants": [{"name": "vertical"},
                         {"name": "square", "transform": {"aspect": "1:1"}},
                         {"name": "scope", "transform": {"aspect": "2.39:1", "letterbox": "on"},
                          "output": {"path": "/out/{variant}/sh010.####.exr"}}]}
    jobs = parse_campaign(spec)
    assert [name for name, _ in jobs] == ["vertical", "square", "scope"]
    assert [job.output.path for _, job in jobs] == ["/out/sh010_vertical.####.exr", "/out/sh010_square.####.exr",
                                                    "/out/scope/sh010.####.exr"]
    square = jobs[1][1].transform.params
    assert square["aspect"] == "1:1" and square["subject"] == "faces"   # merged one level deep
    assert variant_output("/out/take.mov", "red") == "/out/take_red.mov"
    assert variant_output("/out/sh010.%04d.exr", "red") == "/out/sh010_red.%04d.exr"
    assert parse_campaign({k: v for k, v in spec.items() if k != "variants"})[0][0] is None


def test_bad_variants_are_named_with_their_field() -> None:
    spec = {"plate": {"path": "/p.####.exr"}, "output": {"path": "/o.####.exr"}, "transform": {"name": "grade"},
            "variants": [{"name": "a"}, {"name": "a"}, {"name": "b", "plate": {}}, {"name": "bad name"},
                         {"name": "c", "controls": {"motion": 12}}]}
    with pytest.raises(JobError) as error:
        parse_campaign(spec)
    text = str(error.value)
    for expected in ("$.variants[1].name: 'a' is used twice", "$.variants[2].plate: not a field a variant can change",
                     "$.variants[3].name", "$.variants[4] (c): $.controls.motion"):
        assert expected in text, text


def test_retake_run_renders_every_variant_and_a_contact_sheet(tmp_path: Path) -> None:
    plate = write_plate(tmp_path / "plate", count=4, width=64, height=48)
    job = tmp_path / "campaign.json"
    job.write_text(json.dumps({
        "plate": {"path": plate, "colorspace": "ACES2065-1"},
        "transform": {"name": "grade"},
        "keyframes": [{"frame": 1001, "grade": {"slope": [1.2, 1.0, 0.8]}}],
        "output": {"path": str(tmp_path / "out" / "{variant}" / "sh010.####.exr")},
        "variants": [{"name": "warm"},
                     {"name": "cold", "keyframes": [{"frame": 1001, "grade": {"slope": [0.8, 1.0, 1.3]}}]}]}))
    done = retake("validate", str(job))
    assert done.returncode == 0 and "variant 'warm'" in done.stdout and "variant 'cold'" in done.stdout
    done = retake("run", str(job), "--progress", "json")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["name"] for e in events if e["event"] == "variant"] == ["warm", "cold"]
    for name in ("warm", "cold"):
        assert len(list((tmp_path / "out" / name).glob("sh010.*.exr"))) == 4
    assert (tmp_path / "out" / "campaign.campaign.png").stat().st_size > 1000   # where the variants went
    with pytest.raises(JobError, match="is a campaign"):
        load_job(job)


def test_variants_of_one_plate_share_its_analysis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reframe campaign in one process finds the subjects once, whatever the number of ratios."""
    from engine.campaign import run_campaign
    from engine.transforms import reframe

    calls = []
    real = reframe.find_subjects
    monkeypatch.setattr(reframe, "find_subjects", lambda *a, **k: calls.append(a[1:]) or real(*a, **k))
    plate = write_plate(tmp_path / "plate", count=3, width=96, height=54)
    spec = {"plate": {"path": plate, "colorspace": "ACES2065-1"}, "transform": {"name": "reframe", "subject": "centre"},
            "output": {"path": str(tmp_path / "out" / "{variant}" / "r.####.exr")},
            "variants": [{"name": "tall"}, {"name": "tall_again", "transform": {"hold": 0.2}},
                         {"name": "square", "transform": {"aspect": "1:1"}}]}
    results = run_campaign(parse_campaign(spec))
    assert all(len(r.rendered) == 3 for r in results)
    assert len(calls) == 1   # 9:16 and 1:1 both crop sideways: one analysis serves all three
