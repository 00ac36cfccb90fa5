"""The Retake panel inside Nuke: docked (Pane menus > Retake) or opened from a node's button.

It is the shared ``RetakePanel`` on a ``NukeHost`` of a Retake node: the selected one when
the docked panel opens, or the node whose "Open panel" button was pressed. Qt signals run
the put-back on Nuke's main thread, where nodes may be created.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QVBoxLayout, QWidget

from plugin.hosts.nuke import NukeHost, _nuke
from plugin.panel import RetakePanel

_open: list[RetakePanel] = []  # keeps floating panels alive (Qt would delete an unreferenced window)


def _retake_node(node: Any) -> Any:
    if node is not None:
        return node
    nuke = _nuke()
    selected = [n for n in nuke.allNodes() if n.Class() == "Retake" and n.knob("selected") and n["selected"].value()]
    retakes = selected or nuke.allNodes("Retake")
    return retakes[0] if retakes else None


def panel_for(node: Any) -> RetakePanel:
    """A panel on ``node`` (None: the selected Retake node); says what to do when there is none."""
    node = _retake_node(node)
    panel = RetakePanel(NukeHost(node) if node is not None else None)
    if node is None:
        panel.show_error("No Retake node in the script: create one (Tab > Retake), connect the plate's Read to "
                         "its first input, then Reload.")
    else:
        panel.load_from_host()
    return panel


class RetakeNukePanel(QWidget):
    """The docked panel Nuke builds from the string given to ``registerWidgetAsPanel``."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.panel = panel_for(None)
        layout.addWidget(self.panel)


def show_for(node: Any) -> RetakePanel:
    """The node's "Open panel" button: a floating panel on that node."""
    panel = panel_for(node)
    panel.resize(1180, 760)
    panel.show()
    _open.append(panel)
    return panel
