"""How the engine's own process takes memory from the C library.

A frame's working tensors are 2-50 MB each (960x540 to 1920x1080 float32, a few
channels) and live for one torch op. glibc's malloc serves blocks that large with a
fresh ``mmap`` and gives them back with ``munmap`` on free, and trims the top of its
heap back to the system when a few MB lie free there; either way the next op's buffer
arrives as untouched pages, and the kernel zero-fills every 4 KiB of it on first write.
On a memory-bound CPU that page-faulting cost more than the arithmetic: on the 2-core
CI machine the torch flow of a Sintel pair took 0.485 -> 0.373 s at 960x540 (min of 4
runs each) once malloc was told to keep what it had (``M_MMAP_THRESHOLD`` 1 GiB: big
blocks come from the heap too; ``M_TRIM_THRESHOLD`` at its maximum: the heap is not
trimmed), and a cold Sintel synthesis ran 0.53-0.68 -> 0.75-0.84 frames/s. The process
keeps its peak, but the peak did not grow: ``bench/propagation.py``'s memory rows read
433.8 / 437.2 MiB for 48 / 480 frames (435.5 / 441.0 before this and the flow changes).

This is a property of a process, not of a library: only the engine's own processes
(``retake`` on the command line, which is what the Nuke and Resolve panels launch) call
``keep_freed_memory``; importing the engine into another program changes nothing.
Elsewhere than glibc (macOS, Windows) it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import platform

__all__ = ["keep_freed_memory"]

# <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# Blocks up to this size come from the heap. glibc 2.36 (Debian 12) takes 1 GiB; glibc
# documents 32 MiB as the limit on 64-bit, so where 1 GiB is refused that is tried.
_MMAP_THRESHOLDS = (1 << 30, 32 << 20)
_NO_TRIM = (1 << 31) - 1

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse (see the module docstring).

    Returns True when the settings took effect (glibc accepted both), False where the C
    library is not glibc or refused. Safe to call more than once; it acts once.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 on error. Never the trim threshold alone: setting it
    # turns off glibc's dynamic mmap threshold too, and every block over 128 KiB is then
    # mmapped afresh (the synthesis ran 4x slower so).
    mmap_set = any(mallopt(_M_MMAP_THRESHOLD, threshold) == 1 for threshold in _MMAP_THRESHOLDS)
    _applied = mmap_set and mallopt(_M_TRIM_THRESHOLD, _NO_TRIM) == 1
    return _applied
