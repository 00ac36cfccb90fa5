"""The generator interface: a source frame and a target-state prompt in, a keyframe out.

A generator (a *backend*) makes one keyframe: the source frame as it should become
under the artist's prompt. Every backend speaks the engine's pixel convention on both
sides, (H, W, 3) float32 scene-linear ACEScg, unclamped; what a model needs (sRGB,
a working resolution, a seed on its device) is the backend's business.

Backends are found by name (``get_generator``): the built-in ones listed in
``BUILTIN_GENERATORS`` (imported only when asked for) and any a studio installs under
the entry-point group ``retake.generators``. An entry point names a factory, a
callable ``(**options) -> Generator`` (a ``Generator`` subclass is one), so a package
can add, say, an HTTP endpoint on the studio's own GPU server without touching the
engine::

    [project.entry-points."retake.generators"]
    studio-http = "studio_retake.http:HttpGenerator"

When the engine builds the backend itself (``generate_missing_keyframes``) it passes
the options ``device`` (a torch device name: "cpu", "cuda", "mps") and ``colour`` (the
job's ``engine.colour.Colour``, for conversions through OpenColorIO); a factory takes
them and may ignore them (``**options``). Backend-specific settings come from the
backend's own environment variables (the diffusers one reads ``$RETAKE_MODEL_DIR``).

Which backend, in order: the ``name`` argument, ``$RETAKE_GENERATOR``, ``"diffusers"``.
"""
from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np

from engine.errors import InputError

__all__ = ["BUILTIN_GENERATORS", "DEFAULT_GENERATOR", "ENTRY_POINT_GROUP", "GENERATOR_ENV", "GenerateRequest",
           "Generator", "available_generators", "get_generator"]

ENTRY_POINT_GROUP = "retake.generators"
GENERATOR_ENV = "RETAKE_GENERATOR"
DEFAULT_GENERATOR = "diffusers"
# name -> "module:attribute" of the factory; imported on demand so ``import engine``
# never pulls in diffusers or transformers.
BUILTIN_GENERATORS: dict[str, str] = {
    "diffusers": "engine.generate.diffusers_backend:DiffusersGenerator",
}

Factory = Callable[..., "Generator"]


@dataclass(frozen=True)
class GenerateRequest:
    """What one keyframe is made from.

    source: (H, W, 3) float32, scene-linear ACEScg, the plate's frame at the output size.
    prompt: the target state ("a purple sky over the mountain landscape").
    reference: an optional character/style reference, (h, w, 3) float32 scene-linear
    ACEScg at any size, or None.
    structure, motion: the job's controls, 1-9 (higher = closer to the source).
    seed: the random seed; the same request and seed give the same keyframe.
    frame: the absolute frame number (for messages and for backends that care).
    """

    source: np.ndarray
    prompt: str
    reference: np.ndarray | None = None
    structure: int = 5
    motion: int = 5
    seed: int = 0
    frame: int = 0

    def __post_init__(self) -> None:
        if self.source.ndim != 3 or self.source.shape[2] != 3 or self.source.dtype != np.float32:
            raise ValueError(f"source must be (H, W, 3) float32, got {self.source.shape} {self.source.dtype}")
        if self.reference is not None and (self.reference.ndim != 3 or self.reference.shape[2] != 3
                                           or self.reference.dtype != np.float32):
            raise ValueError(f"reference must be (h, w, 3) float32, got {self.reference.shape} {self.reference.dtype}")
        if not self.prompt.strip():
            raise ValueError("prompt is empty")
        for name in ("structure", "motion"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 9:
                raise ValueError(f"{name} must be an integer from 1 to 9, got {value!r}")


class Generator(ABC):
    """A keyframe generator. Subclasses set ``name`` and implement ``generate``.

    ``model`` names the model for people and file headers (a folder name, an
    endpoint); ``fingerprint`` identifies everything about the backend that decides
    the pixels (the model's files, steps, guidance...): a generated keyframe whose
    recorded fingerprint differs was made by something else. ``supports_reference``
    says whether ``GenerateRequest.reference`` is used; a caller warns when it is not.
    """

    name: str = "generator"
    supports_reference: bool = False

    @property
    def model(self) -> str:
        return self.name

    @property
    def fingerprint(self) -> str:
        return self.model

    @abstractmethod
    def generate(self, request: GenerateRequest) -> np.ndarray:
        """The keyframe: (H, W, 3) float32 scene-linear ACEScg at the source's size."""


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {entry.name: entry for entry in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def available_generators() -> list[str]:
    """Every backend name: the built-in ones, then those installed under ``retake.generators``."""
    names = list(BUILTIN_GENERATORS)
    names += sorted(name for name in _entry_points() if name not in BUILTIN_GENERATORS)
    return names


def _load_factory(name: str) -> Factory:
    if name in BUILTIN_GENERATORS:
        module_name, attribute = BUILTIN_GENERATORS[name].split(":")
        return getattr(importlib.import_module(module_name), attribute)
    entries = _entry_points()
    if name not in entries:
        raise InputError(
            f"unknown keyframe generator {name!r}",
            hint=f"set {GENERATOR_ENV} to one of: {', '.join(available_generators())}; a studio backend is "
                 f"installed as a package declaring the entry-point group {ENTRY_POINT_GROUP!r}",
        )
    try:
        return entries[name].load()
    except Exception as error:  # a broken plug-in must say which one it is
        raise InputError(f"the keyframe generator {name!r} cannot load: {error}",
                         hint=f"reinstall the package that provides it ({entries[name].value})") from error


def get_generator(name: str | None = None, **options: Any) -> Generator:
    """The backend ``name`` (else ``$RETAKE_GENERATOR``, else "diffusers"), built with ``options``.

    Raises InputError naming what to set when the backend is unknown, cannot load, or
    has no model configured (the backend's own check, e.g. ``$RETAKE_MODEL_DIR``).
    """
    chosen = name or os.environ.get(GENERATOR_ENV) or DEFAULT_GENERATOR
    generator = _load_factory(chosen)(**options)
    if not isinstance(generator, Generator):
        raise InputError(f"the keyframe generator {chosen!r} made a {type(generator).__name__}, not a Generator",
                         hint="its factory must return an engine.generate.Generator")
    return generator
