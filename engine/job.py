"""The job spec: the one contract between panels, the CLI and a farm.

A job is versioned JSON. ``parse_job`` turns a dict into typed, validated
dataclasses and reports *every* problem at once, each naming its JSON path
(``$.controls.motion``), the bad value and what is allowed. ``JOB_SCHEMA`` is the
same contract as a JSON Schema (published as ``engine/schema/job.schema.json``).

Standard library only: this module is imported inside Nuke's and Resolve's own
Python, where numpy, torch and OpenImageIO are not available.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import JobError

JOB_VERSION = 1
MAX_KEYFRAMES = 64
OUTPUT_FORMATS = ("exr", "sdr", "hdr")
RESOLUTIONS = ("draft", "1080p", "source")
SEARCHES = ("patchmatch", "full", "flow")
FLOWS = ("auto", "torch", "dis")
COMPRESSIONS = ("none", "piz", "zip", "zips")
MISSING_POLICIES = ("error", "hold", "black")
NONFINITE_POLICIES = ("error", "sanitize")
INTERPOLATIONS = ("smooth", "linear", "constant")
LOCK_NAMES = ("faces", "bodies", "poses", "blocking")
# Locks a transformation turns on when the job leaves them out.
DEFAULT_LOCKS: dict[str, tuple[str, ...]] = {"character": ("faces", "bodies", "poses")}
_RESOLUTION_RE = re.compile(r"^([1-9][0-9]{1,4})x([1-9][0-9]{1,4})$")

@dataclass(frozen=True)
class Number:
    """A numeric transform parameter in [lo, hi] (``integer``: whole numbers only)."""

    lo: float
    hi: float
    integer: bool = False


# Parameter kinds besides choices (a tuple) and ``Number``: a file the transformation
# reads (resolved against the job file's folder, protected and stamped like a keyframe
# image), the four corners of a quad on a frame ([x1, y1, ..., x4, y4], plate pixels,
# y down), and an absolute frame number of the plate.
PATH = "path"
QUAD = "quad"
FRAME = "frame"
ASPECT = "aspect"   # an aspect ratio "W:H" ("9:16", "2.39:1") or a number ("1.85")
_ASPECT_RE = re.compile(r"^\s*([0-9]+(\.[0-9]+)?)\s*(:\s*([0-9]+(\.[0-9]+)?))?\s*$")

# What each transformation accepts in ``transform`` besides its name:
# parameter -> (kind, default); kind: a tuple of allowed values, ``Number``, PATH, QUAD
# or FRAME. A default of None makes a parameter required. Pure data, so a host panel
# can build its controls without importing the engine's heavy modules.
TRANSFORM_PARAMS: dict[str, dict[str, tuple[Any, Any]]] = {
    "grade": {
        "interpolation": (INTERPOLATIONS, "smooth"),
    },
    # Keyframe images carried along the plate's optical flow (engine.transforms.propagate).
    # flow: the estimator of the frame-to-frame flow ("torch", the default: the engine's own,
    # any device; "dis": OpenCV DIS on the CPU, the fast reference/fallback, which follows a
    # moving shadow over still ground (a local paint then lands in the shadow,
    # tests/test_recipes.py); "auto": torch on a GPU, dis on the CPU,
    # engine.flow.resolve_flow_method). search: where the flow's
    # match is not exact, "patchmatch" looks for each patch in the keyframe's source
    # (engine.patchmatch); "full" does so at every pixel (best, slowest); "flow" warps along
    # the flow alone (fastest, smears where it fails).
    "propagate": {
        "flow": (FLOWS, "torch"),
        "search": (SEARCHES, "patchmatch"),
    },
    # Keyframe-directed effects that stick to the scene (painted elements, glows, damage):
    # propagate, the keyframes' alpha (where the effect is) carried too and written as the
    # output's alpha (engine.transforms.propagate, MATTE_CARRYING).
    # search: "flow" by default: a painted element must move with the scene and never be
    # copied onto a look-alike patch of plain ground, which PatchMatch would do.
    "vfx": {
        "flow": (FLOWS, "torch"),
        "search": (SEARCHES, "flow"),
    },
    # A person restyled keeping their performance: propagate, with the faces, bodies and
    # poses locks on unless the job's ``locks`` says otherwise (DEFAULT_LOCKS).
    "character": {
        "flow": (FLOWS, "torch"),
        "search": (SEARCHES, "patchmatch"),
    },
    # The plate's camera move (background motion, engine.analysis.camera) given to
    # another picture: a still or plate ``target`` (a matte painting, a CG render) moves
    # as the plate's camera did from ``reference`` on, with ``shutter`` (fraction of a
    # frame, 0 = none) of motion blur (engine.transforms.camera_transfer).
    "camera_transfer": {
        "target": (PATH, None),
        "reference": (FRAME, None),
        "shutter": (Number(0.0, 1.0), 0.5),
    },
    # A product's surface, marked as a quad on the ``reference`` frame, tracked across the
    # plate (engine.analysis.planar) and replaced by ``image``, lit like the surface it
    # replaces, kept behind what passes in front of it, with the plate's motion blur
    # (engine.transforms.product_swap).
    "product_swap": {
        "image": (PATH, None),
        "quad": (QUAD, None),
        "reference": (FRAME, None),
        "match_light": (("on", "off"), "on"),
        "shutter": (Number(0.0, 1.0), 0.5),
    },
    # A new setting behind the take's people: ``image`` moved with the plate's camera from
    # ``reference`` (as camera_transfer), the people kept in front through their soft person
    # mask (engine.transforms.environment).
    "environment": {
        "image": (PATH, None),
        "reference": (FRAME, None),
        "shutter": (Number(0.0, 1.0), 0.5),
    },
    # The take's movement carried onto another picture: ``target`` (a new character or object
    # placed on the ``reference`` frame) follows the plate's dense flow from that frame
    # (engine.transforms.motion_transfer).
    "motion_transfer": {
        "target": (PATH, None),
        "reference": (FRAME, None),
        "mode": (("flow", "face", "body"), "flow"),
        "flow": (FLOWS, "torch"),
    },
    # A new light on the take: each keyframe's ``light`` (direction, intensity, colour,
    # softness), interpolated like a grade, added on a shading estimate of the plate
    # (engine.transforms.relight). form: where the normals come from: "people" = the
    # people's silhouettes (person mask) inflated into rounded forms, with the image's
    # shape-from-shading on top; "image" (the default: the mask would round whatever the
    # segmentation model calls a person on a shot without people) = the image's shading alone.
    "relight": {
        "interpolation": (INTERPOLATIONS, "smooth"),
        "form": (("people", "image"), "image"),
    },
    # Another aspect ratio after the take, the crop following the subject (faces, else
    # people, else what moves relative to the camera, else the centre) on a smooth path
    # that holds still while the subject does
    # (engine.transforms.reframe). hold: the dead band, a share of the crop; smoothness:
    # of the path (higher = slower moves); letterbox: a wider crop between black bars;
    # extend: a wider ratio made by extending the frame sideways from what the camera saw
    # in other frames (engine.transforms.extend) instead of cropping its height.
    "reframe": {
        "aspect": (ASPECT, "9:16"),
        "subject": (("auto", "faces", "people", "motion", "centre"), "auto"),
        "hold": (Number(0.0, 0.5), 0.1),
        "smoothness": (Number(1.0, 1e6), 200.0),
        "letterbox": (("off", "on"), "off"),
        "extend": (("off", "on"), "off"),
    },
}


@dataclass(frozen=True)
class PlateSpec:
    path: str
    colorspace: str | None = None  # None: decided from the file (chromaticities, container flag, format)
    first: int | None = None
    last: int | None = None
    part: str | None = None
    view: str | None = None
    fps: str | None = None  # override, e.g. "24" or "24000/1001"; None: from the file, else 24
    missing: str = "error"
    nonfinite: str = "error"


@dataclass(frozen=True)
class CDL:
    """An ASC CDL. Applied in the config's ``color_timing`` space (ACEScct)."""

    slope: tuple[float, float, float] = (1.0, 1.0, 1.0)
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    power: tuple[float, float, float] = (1.0, 1.0, 1.0)
    saturation: float = 1.0


@dataclass(frozen=True)
class Light:
    """A light added by ``relight`` (keyed per keyframe). azimuth: degrees, 0 from the camera,
    +90 from the frame's right, -90 from its left; elevation: degrees, +90 from above;
    intensity: the light added, relative to the frame's mean light (0 = none); colour: linear
    ACEScg RGB; softness: 0 a hard key, 1 a wrapped, soft source."""

    azimuth: float = 45.0
    elevation: float = 30.0
    intensity: float = 1.0
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0)
    softness: float = 0.5


@dataclass(frozen=True)
class Keyframe:
    frame: int
    image: str | None = None
    colorspace: str | None = None
    prompt: str | None = None
    reference: str | None = None
    strength: float = 1.0
    grade: CDL | None = None
    look: str | None = None
    light: Light | None = None
    centre: tuple[float, float] | None = None   # reframe: the artist's crop centre here, plate pixels


@dataclass(frozen=True)
class Controls:
    motion: int = 5
    structure: int = 5


@dataclass(frozen=True)
class Locks:
    faces: bool = False
    bodies: bool = False
    poses: bool = False
    blocking: bool = False


@dataclass(frozen=True)
class Transform:
    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OutputSpec:
    path: str
    format: str = "exr"
    resolution: str = "source"
    colorspace: str | None = None  # EXR only; None: ACES2065-1 (aces_interchange)
    compression: str = "none"


@dataclass(frozen=True)
class Job:
    plate: PlateSpec
    output: OutputSpec
    transform: Transform
    keyframes: tuple[Keyframe, ...] = ()
    controls: Controls = Controls()
    locks: Locks = Locks()
    ocio: str | None = None
    seed: int = 0
    version: int = JOB_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The job as JSON-ready data (the inverse of ``parse_job``)."""
        data = asdict(self)
        transform = data.pop("transform")
        data["transform"] = {"name": transform["name"], **transform["params"]}
        # A JSON round trip turns the tuples into lists, as a job file has them.
        return _drop_none(json.loads(json.dumps(data)))

    def input_paths(self) -> list[str]:
        """Every file path the job reads besides the plate (keyframe images, references, and
        the transformation's own files)."""
        paths: list[str] = []
        for key in self.keyframes:
            paths += [p for p in (key.image, key.reference) if p]
        for name, (kind, _default) in TRANSFORM_PARAMS.get(self.transform.name, {}).items():
            value = self.transform.params.get(name)
            if kind == PATH and isinstance(value, str):
                paths.append(value)
        return paths


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


class _Errors:
    """Collects every problem of a spec so the user can fix them in one go."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, value: Any, allowed: str) -> None:
        self.items.append(f"{path}: {json.dumps(value, default=str)[:80]} is not allowed; expected {allowed}")

    def missing(self, path: str, allowed: str) -> None:
        self.items.append(f"{path}: is required ({allowed})")


def _obj(data: Any, path: str, errors: _Errors, known: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(data, dict):
        errors.add(path, data, "an object")
        return {}
    for key in data:
        if key not in known:
            errors.items.append(f"{path}.{key}: unknown field; allowed: {', '.join(known)}")
    return data


def _str(data: dict, key: str, path: str, errors: _Errors, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            errors.missing(f"{path}.{key}", "a string")
        return None
    if not isinstance(value, str) or not value.strip():
        errors.add(f"{path}.{key}", value, "a non-empty string")
        return None
    return value


def _int(data: dict, key: str, path: str, errors: _Errors, *, lo: int | None = None, hi: int | None = None,
         default: int | None = None, required: bool = False) -> int | None:
    value = data.get(key)
    if value is None:
        if required:
            errors.missing(f"{path}.{key}", "an integer")
        return default
    allowed = "an integer" + (f" from {lo} to {hi}" if lo is not None and hi is not None else "")
    if isinstance(value, bool) or not isinstance(value, int):
        errors.add(f"{path}.{key}", value, allowed)
        return default
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        errors.add(f"{path}.{key}", value, allowed)
        return default
    return value


def _choice(data: dict, key: str, path: str, errors: _Errors, choices: tuple[str, ...], default: str) -> str:
    value = data.get(key, default)
    if value not in choices:
        errors.add(f"{path}.{key}", value, "one of " + ", ".join(f'"{c}"' for c in choices))
        return default
    return value


def _number(value: Any, path: str, errors: _Errors, *, lo: float | None = None, hi: float | None = None) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        errors.add(path, value, "a number")
        return None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        errors.add(path, value, f"a number from {lo} to {hi}")
        return None
    return float(value)


def _triple(data: dict, key: str, path: str, errors: _Errors, default: tuple[float, float, float],
            lo: float | None = None) -> tuple[float, float, float]:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value] * 3
    if not isinstance(value, list) or len(value) != 3:
        errors.add(f"{path}.{key}", value, "a number or a list of three numbers (R, G, B)")
        return default
    numbers = [_number(v, f"{path}.{key}[{i}]", errors, lo=lo) for i, v in enumerate(value)]
    if any(n is None for n in numbers):
        return default
    return (numbers[0], numbers[1], numbers[2])  # type: ignore[return-value]


def _resolve_path(value: str | None, base_dir: Path | None) -> str | None:
    """Paths in a job file are relative to the job file; patterns keep their #, %04d, @ or [..]."""
    if value is None:
        return None
    expanded = os.path.expanduser(os.path.expandvars(value))
    if base_dir is not None and not os.path.isabs(expanded):
        expanded = str(base_dir / expanded)
    return os.path.normpath(expanded)


def parse_fps(text: str) -> tuple[int, int] | None:
    """``"24"``, ``"23.976"``, ``"24000/1001"`` -> (numerator, denominator); None when not a rate."""
    text = text.strip()
    match = re.fullmatch(r"([0-9]+)(?:/([0-9]+))?", text)
    if match:
        num, den = int(match.group(1)), int(match.group(2) or 1)
        return (num, den) if num > 0 and den > 0 else None
    if re.fullmatch(r"[0-9]+\.[0-9]+", text):
        value = float(text)
        for nominal in (24, 30, 48, 60, 120):  # NTSC rates are written 23.976, 29.97, ...
            if abs(value - nominal * 1000 / 1001) < 0.01:
                return (nominal * 1000, 1001)
        return (round(value * 1000), 1000) if value > 0 else None
    return None


def _parse_plate(data: Any, errors: _Errors, base_dir: Path | None) -> PlateSpec:
    path = "$.plate"
    d = _obj(data, path, errors, ("path", "colorspace", "first", "last", "part", "view", "fps", "missing", "nonfinite"))
    plate_path = _str(d, "path", path, errors, required=True) or ""
    first = _int(d, "first", path, errors)
    last = _int(d, "last", path, errors)
    if first is not None and last is not None and last < first:
        errors.add(f"{path}.last", last, f"a frame number not before plate.first ({first})")
    if isinstance(d.get("fps"), (int, float)) and not isinstance(d.get("fps"), bool):
        d = {**d, "fps": repr(d["fps"])}   # 24 or 23.976 as a number means what "24" or "23.976" does
    fps = _str(d, "fps", path, errors)
    if fps is not None and parse_fps(fps) is None:
        errors.add(f"{path}.fps", fps, 'a frame rate such as "24", "25", "23.976" or "24000/1001"')
    part = d.get("part")
    if part is not None and not isinstance(part, (str, int)):
        errors.add(f"{path}.part", part, "a part name or a part index")
    return PlateSpec(
        path=_resolve_path(plate_path, base_dir) or "",
        colorspace=_str(d, "colorspace", path, errors),
        first=first,
        last=last,
        part=None if part is None else str(part),
        view=_str(d, "view", path, errors),
        fps=fps,
        missing=_choice(d, "missing", path, errors, MISSING_POLICIES, "error"),
        nonfinite=_choice(d, "nonfinite", path, errors, NONFINITE_POLICIES, "error"),
    )


def _parse_grade(data: Any, path: str, errors: _Errors) -> CDL | None:
    d = _obj(data, path, errors, ("slope", "offset", "power", "saturation"))
    if not isinstance(data, dict):
        return None
    saturation = 1.0
    if "saturation" in d:
        saturation = _number(d["saturation"], f"{path}.saturation", errors, lo=0.0) or 0.0
    return CDL(
        slope=_triple(d, "slope", path, errors, (1.0, 1.0, 1.0), lo=0.0),
        offset=_triple(d, "offset", path, errors, (0.0, 0.0, 0.0)),
        power=_triple(d, "power", path, errors, (1.0, 1.0, 1.0), lo=1e-6),
        saturation=saturation,
    )


def _parse_light(data: Any, path: str, errors: _Errors) -> Light | None:
    d = _obj(data, path, errors, ("azimuth", "elevation", "intensity", "colour", "softness"))
    if not isinstance(data, dict):
        return None
    default = Light()

    def number(key: str, lo: float, hi: float) -> float:
        if key not in d:
            return float(getattr(default, key))
        value = _number(d[key], f"{path}.{key}", errors, lo=lo, hi=hi)
        return float(getattr(default, key)) if value is None else float(value)

    return Light(azimuth=number("azimuth", -180.0, 180.0), elevation=number("elevation", -90.0, 90.0),
                 intensity=number("intensity", 0.0, 1000.0),
                 colour=_triple(d, "colour", path, errors, (1.0, 1.0, 1.0), lo=0.0),
                 softness=number("softness", 0.0, 1.0))


def _parse_keyframes(data: Any, errors: _Errors, base_dir: Path | None) -> tuple[Keyframe, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        errors.add("$.keyframes", data, f"a list of up to {MAX_KEYFRAMES} keyframes")
        return ()
    if len(data) > MAX_KEYFRAMES:
        errors.add("$.keyframes", f"{len(data)} keyframes", f"at most {MAX_KEYFRAMES} keyframes")
    keys: list[Keyframe] = []
    seen: dict[int, int] = {}
    for i, item in enumerate(data):
        path = f"$.keyframes[{i}]"
        d = _obj(item, path, errors, ("frame", "image", "colorspace", "prompt", "reference", "strength", "grade", "look",
                                      "light", "centre"))
        centre = None
        if "centre" in d:
            value = d["centre"]
            if (isinstance(value, list) and len(value) == 2
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)):
                centre = (float(value[0]), float(value[1]))
            else:
                errors.add(f"{path}.centre", value, "[x, y]: where the reframe's crop is centred on this frame, "
                                                    "plate pixels (y down)")
        frame = _int(d, "frame", path, errors, required=True)
        if frame is None:
            continue
        if frame in seen:
            errors.add(f"{path}.frame", frame, f"a frame not already keyed (keyframes[{seen[frame]}] has it)")
        seen[frame] = i
        strength = 1.0
        if "strength" in d:
            strength = _number(d["strength"], f"{path}.strength", errors, lo=0.0, hi=1.0) or 0.0
        grade = _parse_grade(d["grade"], f"{path}.grade", errors) if "grade" in d else None
        look = _str(d, "look", path, errors)
        if grade is not None and look is not None:
            errors.items.append(f"{path}: has both grade and look; give one of them")
        keys.append(Keyframe(
            frame=frame,
            image=_resolve_path(_str(d, "image", path, errors), base_dir),
            colorspace=_str(d, "colorspace", path, errors),
            prompt=_str(d, "prompt", path, errors),
            reference=_resolve_path(_str(d, "reference", path, errors), base_dir),
            strength=strength,
            grade=grade,
            look=look,
            light=_parse_light(d["light"], f"{path}.light", errors) if "light" in d else None,
            centre=centre,
        ))
    return tuple(sorted(keys, key=lambda k: k.frame))


def _parse_param(kind: Any, value: Any, where: str, errors: _Errors, base_dir: Path | None) -> tuple[bool, Any]:
    """(ok, the value as the engine takes it) for one transform parameter. Panels send text,
    so numbers and quads are also read from strings ("0.5", "10,20, 90,20, 90,80, 10,80")."""
    if isinstance(kind, tuple):
        if value not in kind:
            errors.add(where, value, "one of " + ", ".join(f'"{c}"' for c in kind))
            return False, None
        return True, value
    if isinstance(kind, Number) or kind == FRAME:
        number: Any = value
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        integer = kind == FRAME or kind.integer
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number) \
                or (integer and float(number) != int(number)):
            errors.add(where, value, "a frame number" if kind == FRAME else
                       ("a whole number" if integer else "a number") + (f" from {kind.lo:g} to {kind.hi:g}"
                                                                          if isinstance(kind, Number) else ""))
            return False, None
        if isinstance(kind, Number) and not kind.lo <= number <= kind.hi:
            errors.add(where, value, f"a number from {kind.lo:g} to {kind.hi:g}")
            return False, None
        return True, int(number) if integer else float(number)
    if kind == PATH:
        if not isinstance(value, str) or not value.strip():
            errors.add(where, value, "a file path")
            return False, None
        return True, _resolve_path(value.strip(), base_dir)
    if kind == ASPECT:
        match = _ASPECT_RE.match(str(value)) if isinstance(value, (str, int, float)) else None
        if match is None or float(match.group(1)) <= 0 or (match.group(4) is not None and float(match.group(4)) <= 0):
            errors.add(where, value, 'an aspect ratio "W:H" such as "9:16", "1:1", "4:5" or "2.39:1"')
            return False, None
        return True, str(value).strip()
    if kind == QUAD:
        corners: Any = value
        if isinstance(value, str):
            try:
                corners = [float(v) for v in value.replace(";", ",").split(",") if v.strip()]
            except ValueError:
                corners = None
        if isinstance(corners, list) and len(corners) == 4 and all(isinstance(c, list) for c in corners):
            corners = [v for c in corners for v in c]
        if not isinstance(corners, list) or len(corners) != 8 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in corners):
            errors.add(where, value, "4 corners [x1, y1, x2, y2, x3, y3, x4, y4] in plate pixels (y down)")
            return False, None
        return True, [float(v) for v in corners]
    return True, value


def _parse_transform(data: Any, errors: _Errors, base_dir: Path | None = None) -> Transform:
    path = "$.transform"
    if isinstance(data, str):
        data = {"name": data}
    if not isinstance(data, dict):
        errors.add(path, data, 'an object such as {"name": "grade"}')
        return Transform("grade")
    name = data.get("name")
    if name not in TRANSFORM_PARAMS:
        errors.add(f"{path}.name", name, "one of " + ", ".join(f'"{n}"' for n in TRANSFORM_PARAMS))
        return Transform(str(name))
    allowed = TRANSFORM_PARAMS[name]
    params: dict[str, Any] = {}
    given: set[str] = set()
    for key, value in data.items():
        if key == "name":
            continue
        if key not in allowed:
            errors.items.append(f"{path}.{key}: unknown parameter of {name}; allowed: {', '.join(allowed) or 'none'}")
            continue
        given.add(key)
        kind, _default = allowed[key]
        ok, parsed = _parse_param(kind, value, f"{path}.{key}", errors, base_dir)
        if ok:
            params[key] = parsed
    for key, (kind, default) in allowed.items():
        if key in given:
            continue
        if default is None:
            errors.items.append(f"{path}.{key}: required by {name} ({_describe_kind(kind)})")
            continue
        params[key] = default
    return Transform(name, params)


def _param_schema(kind: Any, default: Any) -> dict[str, Any]:
    """The JSON Schema of one transform parameter (the published schema: ``retake schema``)."""
    if isinstance(kind, tuple):
        schema: dict[str, Any] = {"enum": list(kind)}
    elif isinstance(kind, Number):
        schema = {"type": "integer" if kind.integer else "number", "minimum": kind.lo, "maximum": kind.hi}
    elif kind == FRAME:
        schema = {"type": "integer"}
    elif kind == PATH:
        schema = {"type": "string", "minLength": 1}
    elif kind == ASPECT:
        schema = {"type": "string", "pattern": _ASPECT_RE.pattern}
    elif kind == QUAD:
        schema = {"type": "array", "items": {"type": "number"}, "minItems": 8, "maxItems": 8,
                  "description": "x1, y1, ..., x4, y4 in plate pixels, y down, in order around the quad"}
    else:
        schema = {}
    schema["description"] = schema.get("description", _describe_kind(kind))
    return schema | ({"default": default} if default is not None else {})


def _describe_kind(kind: Any) -> str:
    if isinstance(kind, tuple):
        return "one of " + ", ".join(f'"{c}"' for c in kind)
    if isinstance(kind, Number):
        return f"a number from {kind.lo:g} to {kind.hi:g}"
    return {PATH: "a file path", QUAD: "4 corners [x1, y1, ..., x4, y4] in plate pixels",
            FRAME: "a frame number of the plate", ASPECT: 'an aspect ratio "W:H"'}.get(kind, str(kind))


def _parse_output(data: Any, errors: _Errors, base_dir: Path | None) -> OutputSpec:
    path = "$.output"
    d = _obj(data, path, errors, ("path", "format", "resolution", "colorspace", "compression"))
    out_path = _str(d, "path", path, errors, required=True) or ""
    resolution = d.get("resolution", "source")
    if resolution not in RESOLUTIONS and not (isinstance(resolution, str) and _RESOLUTION_RE.match(resolution)):
        errors.add(f"{path}.resolution", resolution, '"draft" (360 lines), "1080p", "source" or "WIDTHxHEIGHT" such as "1920x1080"')
        resolution = "source"
    fmt = _choice(d, "format", path, errors, OUTPUT_FORMATS, "exr")
    compression = _choice(d, "compression", path, errors, COMPRESSIONS, "none")
    colorspace = _str(d, "colorspace", path, errors)
    if fmt != "exr" and (colorspace is not None or compression != "none"):
        errors.items.append(f"{path}: colorspace and compression apply to the exr format only (format is {fmt!r})")
    return OutputSpec(
        path=_resolve_path(out_path, base_dir) or "",
        format=fmt,
        resolution=resolution,
        colorspace=colorspace,
        compression=compression,
    )


def parse_job(data: Any, base_dir: str | Path | None = None) -> Job:
    """Validate ``data`` (parsed JSON) into a ``Job``; relative paths resolve against ``base_dir``.

    Raises ``JobError`` listing every problem found, one per line.
    """
    base = Path(base_dir).resolve() if base_dir is not None else None
    errors = _Errors()
    d = _obj(data, "$", errors, ("version", "plate", "keyframes", "controls", "locks", "transform", "output", "ocio", "seed"))
    version = d.get("version", JOB_VERSION)
    if version != JOB_VERSION:
        errors.add("$.version", version, f"{JOB_VERSION} (this Retake reads job version {JOB_VERSION})")
    if "plate" not in d:
        errors.missing("$.plate", 'an object with at least "path"')
    if "output" not in d:
        errors.missing("$.output", 'an object with at least "path"')
    if "transform" not in d:
        errors.missing("$.transform", "the transformation, e.g. " + '{"name": "grade"}')
    plate = _parse_plate(d.get("plate", {}), errors, base)
    keyframes = _parse_keyframes(d.get("keyframes"), errors, base)
    controls_d = _obj(d.get("controls", {}), "$.controls", errors, ("motion", "structure"))
    controls = Controls(
        motion=_int(controls_d, "motion", "$.controls", errors, lo=1, hi=9, default=5) or 5,
        structure=_int(controls_d, "structure", "$.controls", errors, lo=1, hi=9, default=5) or 5,
    )
    locks_d = _obj(d.get("locks", {}), "$.locks", errors, LOCK_NAMES)
    for name in LOCK_NAMES:
        if name in locks_d and not isinstance(locks_d[name], bool):
            errors.add(f"$.locks.{name}", locks_d[name], "true or false")
    transform = _parse_transform(d.get("transform", {"name": "grade"}), errors, base)
    on_by_default = DEFAULT_LOCKS.get(transform.name, ())
    locks = Locks(**{n: bool(locks_d.get(n, n in on_by_default)) is True for n in LOCK_NAMES})
    output = _parse_output(d.get("output", {}), errors, base)
    ocio = _str(d, "ocio", "$", errors)
    if ocio is not None and not ocio.startswith("ocio://"):
        ocio = _resolve_path(ocio, base)
    seed = _int(d, "seed", "$", errors, lo=0, hi=2**31 - 1, default=0) or 0
    if plate.first is not None and plate.last is not None:
        for i, key in enumerate(keyframes):
            if not plate.first <= key.frame <= plate.last:
                errors.add(f"$.keyframes[{i}].frame", key.frame, f"a frame of the plate ({plate.first}-{plate.last})")
    if errors.items:
        raise JobError(
            f"the job has {len(errors.items)} problem(s):\n  " + "\n  ".join(errors.items),
            hint="fix the fields named above; `retake schema` prints what each field allows",
        )
    return Job(plate=plate, output=output, transform=transform, keyframes=keyframes, controls=controls,
               locks=locks, ocio=ocio, seed=seed, version=version)


def load_job(path: str | Path) -> Job:
    """Read and validate a job file; relative paths inside it are relative to the file."""
    job_path = Path(path)
    try:
        text = job_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise JobError(f"cannot read the job file ({exc.strerror})", path=str(job_path),
                       hint="check the path and its permissions") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise JobError(f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}", path=str(job_path),
                       hint="fix the JSON syntax (a trailing comma or a missing quote is typical)") from None
    if isinstance(data, dict) and "variants" in data:
        raise JobError("this job file is a campaign (it has variants), not one job", path=str(job_path),
                       hint="run it with `retake run`, or open one variant's job (engine.campaign.load_jobs)")
    try:
        return parse_job(data, base_dir=job_path.parent)
    except JobError as exc:
        raise JobError(exc.message, path=str(job_path), hint=exc.hint) from None


def job_hash(job: Job) -> str:
    """A stable hash of everything that decides the pixels (not of where a farm chunk starts)."""
    canonical = json.dumps(job.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


_CDL_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "description": "An ASC CDL, applied in the config's color_timing space (ACEScct).",
    "properties": {
        "slope": {"$ref": "#/$defs/rgb", "default": [1, 1, 1]},
        "offset": {"$ref": "#/$defs/rgb", "default": [0, 0, 0]},
        "power": {"$ref": "#/$defs/rgb", "default": [1, 1, 1]},
        "saturation": {"type": "number", "minimum": 0, "default": 1},
    },
}

JOB_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://retake.dev/schema/job-1.json",
    "title": "Retake job",
    "type": "object",
    "additionalProperties": False,
    "required": ["plate", "output", "transform"],
    "$defs": {
        "rgb": {
            "oneOf": [
                {"type": "number"},
                {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3},
            ]
        },
        "path": {"type": "string", "minLength": 1},
    },
    "properties": {
        "version": {"const": JOB_VERSION},
        "plate": {
            "type": "object",
            "additionalProperties": False,
            "required": ["path"],
            "properties": {
                "path": {"$ref": "#/$defs/path", "description": "A frame pattern (plate.####.exr, plate.%04d.exr, plate.1001-1100#.exr, plate.[1001-1100].exr) or a movie."},
                "colorspace": {"type": "string", "description": "OCIO colour space of the plate; omitted: from the file."},
                "first": {"type": "integer"},
                "last": {"type": "integer"},
                "part": {"type": ["string", "integer"]},
                "view": {"type": "string"},
                "fps": {"oneOf": [{"type": "string", "pattern": r"^[0-9]+(\.[0-9]+|/[0-9]+)?$"},
                                  {"type": "number", "exclusiveMinimum": 0}]},
                "missing": {"enum": list(MISSING_POLICIES), "default": "error"},
                "nonfinite": {"enum": list(NONFINITE_POLICIES), "default": "error"},
            },
        },
        "keyframes": {
            "type": "array",
            "maxItems": MAX_KEYFRAMES,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["frame"],
                "properties": {
                    "frame": {"type": "integer", "description": "Absolute frame number."},
                    "image": {"$ref": "#/$defs/path"},
                    "colorspace": {"type": "string"},
                    "prompt": {"type": "string", "minLength": 1, "description": "The target state, e.g. 'a purple sky over the mountains'."},
                    "reference": {"$ref": "#/$defs/path"},
                    "strength": {"type": "number", "minimum": 0, "maximum": 1, "default": 1},
                    "grade": _CDL_SCHEMA,
                    "look": {"type": "string", "minLength": 1, "description": "An OCIO look of the config."},
                    "centre": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2,
                               "description": "reframe: the crop's centre on this frame [x, y], plate pixels."},
                    "light": {
                        "type": "object", "additionalProperties": False,
                        "description": "A light added by relight at this keyframe (interpolated between keyframes).",
                        "properties": {
                            "azimuth": {"type": "number", "minimum": -180, "maximum": 180, "default": 45},
                            "elevation": {"type": "number", "minimum": -90, "maximum": 90, "default": 30},
                            "intensity": {"type": "number", "minimum": 0, "maximum": 1000, "default": 1},
                            "colour": {"type": "array", "items": {"type": "number", "minimum": 0},
                                       "minItems": 3, "maxItems": 3, "default": [1, 1, 1]},
                            "softness": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5},
                        },
                    },
                },
            },
        },
        "controls": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "motion": {"type": "integer", "minimum": 1, "maximum": 9, "default": 5},
                "structure": {"type": "integer", "minimum": 1, "maximum": 9, "default": 5},
            },
        },
        "locks": {
            "type": "object",
            "additionalProperties": False,
            "properties": {name: {"type": "boolean", "default": False} for name in LOCK_NAMES},
        },
        "transform": {
            "oneOf": [
                {"enum": list(TRANSFORM_PARAMS), "description": "A transformation with its default parameters."},
            ] + [
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"] + [key for key, (_kind, default) in params.items() if default is None],
                    "properties": {
                        "name": {"const": name},
                        **{key: _param_schema(kind, default) for key, (kind, default) in params.items()},
                    },
                }
                for name, params in TRANSFORM_PARAMS.items()
            ]
        },
        "output": {
            "type": "object",
            "additionalProperties": False,
            "required": ["path"],
            "properties": {
                "path": {"$ref": "#/$defs/path", "description": "A frame pattern (out.####.exr) or a movie (.mov, .mp4)."},
                "format": {"enum": list(OUTPUT_FORMATS), "default": "exr"},
                "resolution": {
                    "oneOf": [{"enum": list(RESOLUTIONS)}, {"type": "string", "pattern": _RESOLUTION_RE.pattern}],
                    "default": "source",
                },
                "colorspace": {"type": "string"},
                "compression": {"enum": list(COMPRESSIONS), "default": "none"},
            },
        },
        "ocio": {"type": "string", "description": "An OCIO config path or ocio:// URI."},
        "seed": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1, "default": 0},
    },
}
