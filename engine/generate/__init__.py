"""Prompts to keyframes: a local image model makes a keyframe from the source frame.

* ``base``: the ``Generator`` interface, ``GenerateRequest`` and the backend registry
  (``get_generator``; built-in names plus the ``retake.generators`` entry points).
* ``diffusers_backend``: Stable-Diffusion-class img2img from a local folder or
  checkpoint (imports diffusers only when used).
* ``prompts``: the target-state prompt linter.
* ``keyframes``: ``generate_missing_keyframes``, run before propagation.

Footage and prompts never leave the machine unless a studio installs a backend that
sends them somewhere; no backend here downloads weights.
"""
from typing import Any

__all__ = ["ENTRY_POINT_GROUP", "GenerateRequest", "Generator", "available_generators", "get_generator"]


def __getattr__(name: str) -> Any:
    # Lazy: ``engine.generate.prompts`` (the linter, pure Python) is imported by the host
    # panels, whose Python has no numpy; the rest comes in only when asked for.
    if name in __all__:
        from engine.generate import base

        return getattr(base, name)
    raise AttributeError(f"module 'engine.generate' has no attribute {name!r}")
