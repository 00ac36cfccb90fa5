"""engine.heap: the engine's process keeps freed memory in glibc's heap."""
from __future__ import annotations

import platform
import subprocess
import sys

import pytest

def _glibc_version() -> tuple[int, ...]:
    name, version = platform.libc_ver()
    return tuple(int(part) for part in version.split(".")) if name == "glibc" and version else ()


# The probe reads the heap with mallinfo2, which glibc has since 2.33.
pytestmark = pytest.mark.skipif(platform.system() != "Linux" or _glibc_version() < (2, 33),
                                reason="engine.heap acts on glibc's malloc only; the probe needs glibc >= 2.33")

# Run in a child: mallopt changes the whole process, and the test process must stay as it was.
_PROBE = r"""
import ctypes, sys
from engine.heap import keep_freed_memory
libc = ctypes.CDLL("libc.so.6")
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
before = libc.mallinfo2()
block = libc.malloc(48 << 20)                 # a 1080p float32 frame with six channels
during = libc.mallinfo2()
libc.free(block)
after = libc.mallinfo2()
mb = 1 << 20
print(kept, (during.hblkhd - before.hblkhd) // mb, (during.arena - before.arena) // mb,
      (after.arena - before.arena) // mb)
"""


def _probe(mode: str) -> tuple[str, int, int, int]:
    done = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
    kept, mapped, grown, kept_after_free = done.stdout.split()
    return kept, int(mapped), int(grown), int(kept_after_free)


def test_big_blocks_come_from_the_heap_and_stay_there_after_free() -> None:
    kept, mapped, grown, kept_after_free = _probe("keep")
    assert kept == "True"
    assert mapped == 0, "a 48 MB block was still mmapped"
    assert grown >= 48 and kept_after_free >= 48, "the heap did not keep the freed block"


def test_without_it_glibc_maps_big_blocks_afresh() -> None:
    # The control: the probe can tell the difference.
    kept, mapped, grown, _ = _probe("default")
    assert kept == "False"
    assert mapped >= 48 and grown < 48


def test_it_acts_once_and_says_so_again() -> None:
    done = subprocess.run([sys.executable, "-c",
                           "from engine.heap import keep_freed_memory as k; print(k(), k())"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "True"]


def test_the_retake_command_asks_for_it(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import engine.cli

    calls: list[bool] = []
    monkeypatch.setattr(engine.cli, "keep_freed_memory", lambda: calls.append(True) or True)
    assert engine.cli.main(["schema"]) == 0
    assert calls == [True]
    assert capsys.readouterr().out.strip().startswith("{")
