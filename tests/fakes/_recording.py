"""Every call an adapter makes into a fake host API is recorded, so a test can check each
one against the published stubs (types-nuke, fusionscript-stubs)."""
from __future__ import annotations

import os
import sys
from typing import Any, Callable

_FAKES = os.path.dirname(os.path.abspath(__file__))

# (class name or None for a module function, method name, positional args, keyword args)
CALLS: list[tuple[str | None, str, tuple[Any, ...], dict[str, Any]]] = []


class Recorded:
    """Base of fake host objects: public method calls land in ``CALLS``."""

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        if name.startswith("_") or not callable(value):
            return value
        owner = type(self).__name__

        def call(*args: Any, **kwargs: Any) -> Any:
            if _from_outside():
                CALLS.append((owner, name, args, kwargs))
            return value(*args, **kwargs)

        return call


def api(function: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for module-level API functions of a fake."""

    def call(*args: Any, **kwargs: Any) -> Any:
        if _from_outside():
            CALLS.append((None, function.__name__, args, kwargs))
        return function(*args, **kwargs)

    call.__name__ = function.__name__
    call.__doc__ = function.__doc__
    call.__wrapped__ = function  # type: ignore[attr-defined]
    return call


def _from_outside() -> bool:
    """True when the caller (two frames up: past ``call``) is not a fake itself."""
    caller = sys._getframe(2).f_code.co_filename
    return os.path.dirname(os.path.abspath(caller)) != _FAKES
