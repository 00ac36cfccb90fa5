"""Prompt keyframes through the whole pipeline: a job whose keyframes have only a prompt is
rendered with a tiny local diffusion model (built from configs by tests/test_generate.py),
the generated keyframes land beside the output and a re-run reuses everything."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.job import parse_job
from engine.pipeline import RunOptions, run_job
from tests.plate_factory import write_plate
from tests.test_generate import no_network, no_network_in_this_test, tiny_model  # noqa: F401 - fixtures


def test_prompt_keyframes_are_generated_then_propagated_and_reused(tiny_model, tmp_path: Path,  # noqa: F811
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETAKE_MODEL_DIR", tiny_model["model"])
    monkeypatch.setenv("RETAKE_CACHE", str(tmp_path / "cache"))
    pattern = write_plate(tmp_path / "plate", count=6, width=64, height=48)
    spec = {"plate": {"path": pattern, "colorspace": "ACES2065-1"},
            "keyframes": [{"frame": 1001, "prompt": "a purple sky over the mountains"},
                          {"frame": 1006, "prompt": "a moonlit night over the mountains"}],
            "transform": {"name": "propagate", "flow": "dis"}, "seed": 3,
            "output": {"path": str(tmp_path / "out" / "sh010.####.exr")}}
    first = run_job(parse_job(spec), RunOptions(device="cpu"))
    assert first.rendered == list(range(1001, 1007))
    made = sorted((tmp_path / "out" / "keyframes").glob("*.exr"))
    assert [p.name for p in made] == ["sh010.1001.exr", "sh010.1006.exr"]
    from engine.io.aces_exr import read_exr_attributes
    assert read_exr_attributes(str(made[0]))["retake/prompt"] == "a purple sky over the mountains"
    again = run_job(parse_job(spec), RunOptions(device="cpu"))
    assert again.rendered == [] and again.skipped == list(range(1001, 1007))
