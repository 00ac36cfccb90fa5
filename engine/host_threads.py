"""How many threads the host work beside a render gets (writing frames, flow cache entries).

The render itself (torch on the CPU, or the thread that feeds the GPU) keeps the rest.
"""
from __future__ import annotations

import os

__all__ = ["available_cpus", "background_threads"]

# More threads than this buy nothing: each piece of host work is partly parallel already
# (OpenEXR's pool compresses a frame's chunks in parallel), and each thread holds a frame.
MAX_BACKGROUND_THREADS = 4


def available_cpus() -> int:
    """The CPUs this process may run on (what a farm's scheduler gave it), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def background_threads() -> int:
    """One thread for every 4 CPUs this process may use, 1 to ``MAX_BACKGROUND_THREADS``."""
    return max(1, min(MAX_BACKGROUND_THREADS, available_cpus() // 4))
