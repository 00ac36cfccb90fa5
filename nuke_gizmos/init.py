"""Retake's Nuke start-up, run in every session (GUI and terminal renders): no UI here.

It makes Retake's host side importable (``plugin`` and the pure-Python ``engine.job``);
the engine itself runs in Retake's own environment, found through ``RETAKE_HOME``.
``retake install-nuke`` adds this folder to Nuke's plugin path and sets ``RETAKE_HOME``.
"""
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else ""
_home = os.environ.get("RETAKE_HOME") or os.path.dirname(_here)
if _home and os.path.isdir(os.path.join(_home, "plugin")) and _home not in sys.path:
    sys.path.append(_home)
