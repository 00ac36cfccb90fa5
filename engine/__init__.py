"""Retake's engine: plates in, directed transformation, graded-ready ACES EXR out.

Host-free: nothing here imports a host API or Qt. ``engine.job`` is pure Python
so host panels can build and validate jobs inside Nuke's or Resolve's Python.
"""
__version__ = "0.1.0"
