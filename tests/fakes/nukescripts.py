"""A fake of Nuke's ``nukescripts``: the docked-panel registration ``HOSTS.md`` describes.

``panels.registerWidgetAsPanel(widget, name, id, create=False)`` takes the widget class
as a *string* that Nuke evaluates when the panel is shown; ``_show(id)`` does that
evaluation the same way (import the module, build the class), so a wrong string fails
here as it would in Nuke. (``types-nuke`` carries no stubs for nukescripts.)
"""
from __future__ import annotations

import importlib
from types import SimpleNamespace
from typing import Any

from _recording import api

_registered: dict[str, tuple[str, str]] = {}


@api
def registerWidgetAsPanel(widget: str, name: str, id: str, create: bool = False) -> Any:
    if not isinstance(widget, str):
        raise TypeError("registerWidgetAsPanel: the widget is given as a string Nuke evaluates")
    _registered[id] = (widget, name)
    return _show(id) if create else None


def _show(panel_id: str) -> Any:
    """Build the registered widget as Nuke does when the user opens the panel."""
    widget, _name = _registered[panel_id]
    module_name, _, class_name = widget.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)()


panels = SimpleNamespace(registerWidgetAsPanel=registerWidgetAsPanel)


class PythonPanel:
    def __init__(self, title: str = "", id: str = "") -> None:
        self.title = title
        self.id = id
