"""Retake in DaVinci Resolve: Workspace > Scripts > Retake (installed by `retake install-resolve`).

Takes the clip under the playhead, turns the timeline's markers into keyframes (a marker's
note is the keyframe's prompt), reads the project's colour management, runs the engine
and lays the result on a new video track over the source. Resolve hands menu scripts an
``app`` variable; run outside Resolve, DaVinciResolveScript is used instead.
"""
import os
import sys

_home = os.environ.get("RETAKE_HOME") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _home not in sys.path:
    sys.path.insert(0, _home)

from plugin.hosts.resolve import open_panel  # noqa: E402 - after the path is set

open_panel(globals().get("app"))
