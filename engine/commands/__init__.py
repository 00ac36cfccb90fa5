"""More ``retake`` sub-commands, found at start-up instead of listed in ``engine.cli``.

Two sources, so that each capability brings its own command without editing the CLI:

* modules of this package (``engine/commands/NAME.py``), for engine commands;
* the ``retake.commands`` entry-point group, for commands that live above the engine
  (``plugin`` declares ``panel``, ``install-nuke``, ``install-resolve`` in
  ``pyproject.toml``), so the engine never imports a host or Qt module by name.

Each provider is a module with ``register(subparsers) -> None`` that adds its parsers
and sets ``func`` (a callable ``(argparse.Namespace) -> int``) on each. A provider
module must import nothing heavy at module level: every ``retake`` call imports it.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
from importlib import metadata
from typing import Callable

__all__ = ["ENTRY_POINT_GROUP", "register_all"]

ENTRY_POINT_GROUP = "retake.commands"

Register = Callable[[argparse._SubParsersAction], None]


def _providers() -> list[tuple[str, Register]]:
    found: list[tuple[str, Register]] = []
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        found.append((module_info.name, module.register))
    for entry in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            found.append((entry.name, entry.load()))
        except ImportError as error:  # a broken optional part must not take the whole CLI down
            found.append((entry.name, _unavailable(entry.name, error)))
    return found


def _unavailable(name: str, error: ImportError) -> Register:
    def register(sub: argparse._SubParsersAction) -> None:
        parser = sub.add_parser(name, help=f"(unavailable: {error})")

        def run(_args: argparse.Namespace) -> int:
            from engine.errors import RetakeError

            raise RetakeError(f"the {name!r} command cannot load: {error}; reinstall with ./setup.sh")

        parser.set_defaults(func=run)

    return register


def register_all(sub: argparse._SubParsersAction) -> None:
    """Add every provider's sub-commands to ``sub`` (argparse refuses a name given twice)."""
    for _name, register in _providers():
        register(sub)
