"""From what the artist set in a panel (or on a Nuke node) to a validated job file.

The job is built as plain data and validated with ``engine.job.parse_job`` before
anything is launched, so a bad field is reported in the panel with its JSON path
rather than by a failed render. Which transformations exist and what parameters
they take comes from ``engine.job.TRANSFORM_PARAMS``: a transformation the engine
adds shows up in every host without a change here.

Standard library (plus the pure-Python ``engine.job``) only: runs inside hosts.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from typing import Any

from engine.job import LOCK_NAMES, TRANSFORM_PARAMS, Job, parse_job
from plugin.hosts.base import ColourContext, Host, KeyframeMark, OutputPlate, PlateRef

# The panels' limit (the engine accepts more): sixteen keyframes stay legible in a table.
PANEL_MAX_KEYFRAMES = 16
QUALITIES = ("draft", "final")
OUTPUT_FORMATS = ("exr", "sdr", "hdr")
_EXTENSIONS = {"exr": ".exr", "sdr": ".mov", "hdr": ".mov"}


def transform_names() -> list[str]:
    """The engine's transformations, in the engine's order."""
    return list(TRANSFORM_PARAMS)


def transform_params(name: str) -> dict[str, tuple[Any, Any]]:
    """``{param: (allowed values or type, default)}`` of one transformation."""
    return dict(TRANSFORM_PARAMS.get(name, {}))


@dataclass
class RenderSettings:
    """Everything the panel controls besides the plate and the keyframes."""

    transform: str = "propagate"
    params: dict[str, Any] = field(default_factory=dict)
    motion: int = 5
    structure: int = 5
    locks: dict[str, bool] = field(default_factory=lambda: {name: False for name in LOCK_NAMES})
    output_format: str = "exr"
    quality: str = "final"  # "draft": 360 lines; "final": the source's resolution
    output_path: str = ""


class PanelLimitError(ValueError):
    """More keyframes than a panel handles."""


def check_keyframe_count(count: int) -> None:
    if count > PANEL_MAX_KEYFRAMES:
        raise PanelLimitError(
            f"{count} keyframes: the panel takes at most {PANEL_MAX_KEYFRAMES}; remove "
            f"{count - PANEL_MAX_KEYFRAMES}, or write a job file for `retake run` (up to 64)")


def output_pattern(path: str, output_format: str) -> str:
    """The output path with the format's extension (an EXR sequence needs a frame pattern)."""
    root, ext = os.path.splitext(path)
    wanted = _EXTENSIONS[output_format]
    if output_format == "exr":
        if not any(token in path for token in ("#", "%", "@")):
            root = root.rstrip("._") + ".####"
        return root + wanted
    for token in (".####", "####", ".%04d", "%04d"):
        root = root.replace(token, "")
    return root + wanted


def build_job(plate: PlateRef, keyframes: list[KeyframeMark], settings: RenderSettings,
              colour: ColourContext) -> dict[str, Any]:
    """The job as JSON-ready data (not yet validated; see ``validate``)."""
    check_keyframe_count(len(keyframes))
    plate_d: dict[str, Any] = {"path": plate.path, "first": plate.first, "last": plate.last}
    if plate.colorspace:
        plate_d["colorspace"] = plate.colorspace
    if plate.fps:
        plate_d["fps"] = plate.fps
    keys: list[dict[str, Any]] = []
    for mark in sorted(keyframes, key=lambda k: k.frame):
        key: dict[str, Any] = {"frame": mark.frame}
        if mark.image:
            key["image"] = mark.image
            if mark.colorspace:
                key["colorspace"] = mark.colorspace
        if mark.prompt:
            key["prompt"] = mark.prompt
        if mark.reference:
            key["reference"] = mark.reference
        if mark.strength != 1.0:
            key["strength"] = max(0.0, min(1.0, float(mark.strength)))
        keys.append(key)
    transform: dict[str, Any] = {"name": settings.transform}
    allowed = transform_params(settings.transform)
    transform.update({k: v for k, v in settings.params.items() if k in allowed})
    job: dict[str, Any] = {
        "version": 1,
        "plate": plate_d,
        "keyframes": keys,
        "controls": {"motion": int(settings.motion), "structure": int(settings.structure)},
        "locks": {name: bool(settings.locks.get(name, False)) for name in LOCK_NAMES},
        "transform": transform,
        "output": {
            "path": output_pattern(settings.output_path, settings.output_format),
            "format": settings.output_format,
            "resolution": "draft" if settings.quality == "draft" else "source",
        },
    }
    if colour.config:
        job["ocio"] = colour.config
    return job


def validate(job: dict[str, Any]) -> Job:
    """``engine.job.parse_job`` on the data: raises ``engine.errors.JobError`` naming every bad field."""
    return parse_job(job)


def write_job(job: dict[str, Any], path: str) -> str:
    """Validate, then write the job file (absolute paths inside, so it runs from anywhere)."""
    validate(job)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(job, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)
    return path


def job_path_for(output_path: str) -> str:
    """``/shots/retake/sh010_retake.####.exr`` -> ``/shots/retake/sh010_retake.job.json``."""
    directory, name = os.path.split(output_path)
    stem = name
    for token in ("#", "%", "@"):
        if token in stem:
            stem = stem[: stem.index(token)]
    stem = os.path.splitext(stem.rstrip("._-"))[0] or "retake"
    return os.path.join(directory, stem + ".job.json")


@dataclass(frozen=True)
class PreparedRender:
    """A job written and validated, ready for ``retake run``; ``output`` is what the host gets back."""

    job: dict[str, Any]
    job_path: str
    output: OutputPlate


def prepare_render(host: Host, settings: RenderSettings, keyframes: list[KeyframeMark] | None = None) -> PreparedRender:
    """Plate, keyframes and colour from ``host`` (keyframes from the panel when given) -> a job file.

    Keyframes without an image get one from the host when it can render them (Nuke's
    second input). Raises HostError, PanelLimitError or engine.errors.JobError, each
    saying what to fix; must run where the host allows its API (Nuke: the main thread).
    """
    plate = host.plate()
    marks = list(host.keyframes() if keyframes is None else keyframes)
    check_keyframe_count(len(marks))
    output_path = output_pattern(settings.output_path or host.default_output(plate), settings.output_format)
    missing = [m.frame for m in marks if not m.image]
    if missing:
        images = host.keyframe_images(missing, os.path.join(os.path.dirname(output_path), "keyframes"))
        marks = [replace(m, image=images[m.frame][0], colorspace=images[m.frame][1]) if m.frame in images else m
                 for m in marks]
    settings = replace(settings, output_path=output_path)
    job = build_job(plate, marks, settings, host.colour())
    job_path = write_job(job, job_path_for(output_path))
    colorspace = job["output"].get("colorspace") or ("ACES2065-1" if settings.output_format == "exr" else
                                                      "Rec.1886 Rec.709 - Display" if settings.output_format == "sdr"
                                                      else "Rec.2100-PQ - Display")
    return PreparedRender(job, job_path, OutputPlate(output_path, plate.first, plate.last, colorspace))
