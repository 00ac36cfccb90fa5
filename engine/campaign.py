"""Global campaigns: one take, a matrix of variants, from one job file.

A job file may carry ``"variants"``: a list of objects, each with a ``name`` and any of
``keyframes``, ``controls``, ``locks``, ``transform``, ``output`` and ``seed``. Each
variant is the job with those fields replaced (``transform`` and ``output`` are merged
one level deep, so a variant can change one parameter, e.g. only ``aspect``, or only
``output.format``). Every variant's output is named by the variant: ``{variant}`` in the
output path is replaced by its name (``/out/{variant}/sh010.####.exr``); without the
token ``_NAME`` is added before the frame number (``sh010_red.####.exr``).

Variants share what the engine derives from the plate: the flow cache is keyed by the
plate's content, so the second variant of a propagate campaign computes no flow again.

This module is pure Python (the panels may read campaigns); running them is
``run_campaign`` (imports the pipeline when called).
"""
from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any, Callable

from engine.errors import JobError
from engine.job import Job, parse_job

__all__ = ["VARIANT_FIELDS", "parse_campaign", "load_jobs", "variant_output", "run_campaign"]

VARIANT_FIELDS = ("name", "keyframes", "controls", "locks", "transform", "output", "seed")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_FRAME_TOKEN = re.compile(r"(\.?)(#+|%0?\d*d|@+)(\.[^./\\]+)$")


def variant_output(path: str, name: str) -> str:
    """The output path of variant ``name``: ``{variant}`` replaced, else ``_name`` before the frame token."""
    if "{variant}" in path:
        return path.replace("{variant}", name)
    match = _FRAME_TOKEN.search(path)
    if match:
        return path[:match.start()] + f"_{name}" + path[match.start():]
    root, ext = os.path.splitext(path)
    return f"{root}_{name}{ext}"


def parse_campaign(data: Any, base_dir: str | Path | None = None) -> list[tuple[str | None, Job]]:
    """(variant name, job) for each variant of ``data``; a job file without variants gives [(None, job)].

    Every variant is validated as a whole job; errors name ``$.variants[i]`` and the field.
    """
    if not isinstance(data, dict) or "variants" not in data:
        return [(None, parse_job(data, base_dir))]
    variants = data["variants"]
    base = {k: v for k, v in data.items() if k != "variants"}
    if not isinstance(variants, list) or not variants:
        raise JobError("$.variants: expected a non-empty list of variants",
                       hint='e.g. "variants": [{"name": "red", "keyframes": [...]}, {"name": "blue", ...}]')
    problems: list[str] = []
    jobs: list[tuple[str | None, Job]] = []
    seen: set[str] = set()
    outputs: set[str] = set()
    for i, variant in enumerate(variants):
        where = f"$.variants[{i}]"
        if not isinstance(variant, dict):
            problems.append(f"{where}: expected an object with a name")
            continue
        unknown = [k for k in variant if k not in VARIANT_FIELDS]
        if unknown:
            problems.append(f"{where}.{unknown[0]}: not a field a variant can change; allowed: "
                            + ", ".join(VARIANT_FIELDS))
        name = variant.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            problems.append(f"{where}.name: {name!r} is not allowed; expected letters, digits, '_', '-', '.' "
                            "(it names the variant's output)")
            continue
        if name in seen:
            problems.append(f"{where}.name: {name!r} is used twice")
            continue
        seen.add(name)
        spec = copy.deepcopy(base)
        for key, value in variant.items():
            if key == "name":
                continue
            if key in ("transform", "output") and isinstance(value, dict) and isinstance(spec.get(key), dict) \
                    and value.get("name", spec[key].get("name")) == spec[key].get("name"):
                spec[key] = {**spec[key], **value}
            else:
                spec[key] = copy.deepcopy(value)
        if isinstance(spec.get("output"), dict) and isinstance(spec["output"].get("path"), str):
            spec["output"]["path"] = variant_output(spec["output"]["path"], name)
        try:
            job = parse_job(spec, base_dir)
        except JobError as error:
            problems += [f"{where} ({name}): {line.strip()}" for line in str(error).split("\n")[1:] or [str(error)]]
            continue
        if job.output.path in outputs:
            problems.append(f"{where} ({name}): writes the same output as another variant ({job.output.path})")
        outputs.add(job.output.path)
        jobs.append((name, job))
    if problems:
        raise JobError(f"the campaign has {len(problems)} problem(s):\n  " + "\n  ".join(problems),
                       hint="fix the variants named above; each variant is a whole job once merged")
    return jobs


def load_jobs(path: str | Path) -> list[tuple[str | None, Job]]:
    """A job file, or a campaign file, as its jobs (relative paths resolve against the file)."""
    from engine.job import load_job

    job_path = Path(path)
    try:
        data = json.loads(job_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return [(None, load_job(job_path))]   # load_job says what is wrong with the file
    if not isinstance(data, dict) or "variants" not in data:
        return [(None, load_job(job_path))]
    try:
        return parse_campaign(data, job_path.parent)
    except JobError as error:
        raise JobError(error.message, path=str(job_path), hint=error.hint) from None


def run_campaign(jobs: list[tuple[str | None, Job]], options: Any = None, *, extra_inputs: list[str] | None = None,
                 on_variant: Callable[[str | None, int, int], None] | None = None,
                 sheet: str | None = None) -> list[Any]:
    """Render every variant in turn (``engine.pipeline.run_job``); the RunResults, in order.

    ``sheet``: a PNG path for a summary contact sheet (the source on top, then one row per
    variant, four frames each, through the OCIO SDR view).
    """
    from engine.pipeline import RunOptions, run_job

    results = []
    for i, (name, job) in enumerate(jobs):
        if on_variant:
            on_variant(name, i, len(jobs))
        results.append(run_job(job, options or RunOptions(), extra_inputs=extra_inputs))
    if sheet and results and jobs[0][1].output.format == "exr":
        from engine.contact_sheet import campaign_sheet

        campaign_sheet(jobs, results, sheet)
    return results
