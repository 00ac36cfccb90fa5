"""The prompt linter and ``retake prompts lint``: target states pass, changes and negatives do not."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main
from engine.generate.prompts import Finding, lint_prompt, rewrite

GOOD = [
    "a purple sky over the mountain landscape",
    "golden hour light over the city, long shadows on wet streets",
    "snow on the mountains at dawn",               # "snow" is not "no"
    "a notebook on a wooden desk, nothing else",   # "notebook", "nothing" are not negatives
    "a no-parking sign on a rainy street",         # a thing in the picture, not a negation
    "a sharp turn in the road at dusk",            # "turn" that is not an instruction
    "a make-up artist at work in a mirrored room",
    "the same woman in a red coat, moonlit night",
    "an empty street at night, neon reflections",
    "Another cannon on the knotted rope, a nonchalant knight",
]

# (prompt, kind, the triggering words, the suggestion)
BAD = [
    ("change the sky to purple", "change", "change the sky to purple", "a purple sky"),
    ("Change the sky to purple over the mountains", "change", "Change the sky to purple",
     "a purple sky over the mountains"),
    ("turn the car into a red truck with chrome wheels", "change", "turn the car into a red truck",
     "a red truck with chrome wheels"),
    ("make the sky purple", "change", "make the sky purple", "a purple sky"),
    ("make it night", "change", "make it night", "a night scene"),
    ("make it look like winter", "change", "make it look like winter", "a winter scene"),
    ("replace the car with a bicycle on the street", "change", "replace the car with a bicycle",
     "a bicycle on the street"),
    ("a bicycle instead of the car", "change", "instead of the car", "a bicycle"),
    ("the sky should be purple", "change", "the sky should be purple", "a purple sky"),
    ("remove the car from the street", "removal", "remove the car from the street", "an empty street"),
    ("add a hat to the man", "addition", "add a hat to the man", "the man with a hat"),
    ("a street with no cars", "negative", "no", "an empty street, or describe what is there instead of cars"),
    ("a sky without clouds over the desert", "negative", "without",
     "an empty sky over the desert, or describe what is there instead of clouds"),
]


@pytest.mark.parametrize("prompt", GOOD)
def test_target_state_prompts_are_clean(prompt: str) -> None:
    assert lint_prompt(prompt) == []


@pytest.mark.parametrize(("prompt", "kind", "words", "suggestion"), BAD)
def test_change_style_and_negative_prompts_get_a_target_state_rewrite(prompt: str, kind: str, words: str,
                                                                      suggestion: str) -> None:
    findings = lint_prompt(prompt)
    assert len(findings) == 1, findings
    finding = findings[0]
    assert isinstance(finding, Finding) and finding.kind == kind
    start, end = finding.span
    assert prompt[start:end] == words
    assert finding.suggestion == suggestion
    assert finding.message


def test_remove_without_a_place_says_to_describe_what_is_there() -> None:
    [finding] = lint_prompt("remove the car")
    assert finding.kind == "removal"
    assert "describe what is there instead of the car" in finding.suggestion and "an empty street" in finding.suggestion


@pytest.mark.parametrize("prompt", ["don't change the trees", "do not show the crew", "a man not smiling",
                                    "an old car, never washed", "the sky isn't cloudy", "a room free of clutter",
                                    "a face, not a mask"])
def test_every_negative_is_found_on_word_boundaries(prompt: str) -> None:
    kinds = [f.kind for f in lint_prompt(prompt)]
    assert "negative" in kinds, prompt


def test_several_problems_are_reported_in_order_with_their_spans() -> None:
    prompt = "golden hour over the city, and make the water green, no boats"
    findings = lint_prompt(prompt)
    assert [f.kind for f in findings] == ["change", "negative"]
    assert [prompt[f.span[0]:f.span[1]] for f in findings] == ["make the water green", "no"]
    assert findings[0].suggestion.startswith("golden hour over the city")
    assert "green water" in findings[0].suggestion


def test_an_instruction_with_no_target_still_asks_for_the_result() -> None:
    [finding] = lint_prompt("change the sky")
    assert finding.kind == "change" and finding.span == (0, 6) and "describe the result" in finding.suggestion


def test_rewrite_returns_a_clean_suggestion_or_the_prompt() -> None:
    assert rewrite("change the sky to purple over the mountains") == "a purple sky over the mountains"
    assert rewrite("a purple sky") == "a purple sky"
    assert rewrite("remove the people from the beach") == "an empty beach"
    assert rewrite("a street with no cars") == "an empty street"
    assert rewrite("Make the car red, and add rain") == "a red car, and the scene with rain"
    assert rewrite("remove the car") == "remove the car"     # only advice: left to the artist


@pytest.mark.parametrize("prompt", ["a sign that says 'NO ENTRY'", 'a "no smoking" sign on the door',
                                    "a poster reading \u201cdon't stop\u201d"])
def test_quoted_words_are_text_in_the_picture(prompt: str) -> None:
    assert lint_prompt(prompt) == []


def test_the_cli_prints_each_finding_and_exits_2_when_a_rewrite_is_needed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "lint", "a purple sky over the mountain landscape"]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["prompts", "lint", "a purple sky", "change the sky to purple"]) == 2
    out = capsys.readouterr().out
    assert "fix   prompt 2" in out and "suggest: a purple sky" in out and "1 of 2 prompt(s)" in out


def test_the_cli_lints_every_keyframe_prompt_of_a_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = {
        "plate": {"path": "plate/plate.####.exr"},
        "keyframes": [{"frame": 1001, "prompt": "a purple sky over the mountains"},
                      {"frame": 1040, "prompt": "remove the car from the street"},
                      {"frame": 1050, "image": "painted.1050.exr"}],
        "transform": {"name": "propagate"},
        "output": {"path": "out/retake.####.exr"},
    }
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job), encoding="utf-8")
    assert main(["prompts", "lint", "--job", str(path)]) == 2
    out = capsys.readouterr().out
    assert "$.keyframes[1].prompt (frame 1040)" in out and "suggest: an empty street" in out
    assert "ok    $.keyframes[0].prompt (frame 1001)" in out
    job["keyframes"] = job["keyframes"][:1]
    path.write_text(json.dumps(job), encoding="utf-8")
    assert main(["prompts", "lint", "--job", str(path)]) == 0


def test_the_cli_without_prompts_is_an_input_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "lint"]) == 2
    assert "--job" in capsys.readouterr().err
