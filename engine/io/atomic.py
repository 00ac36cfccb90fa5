"""Atomic file output: a file appears under its final name complete, or not at all.

A render can be killed at any moment (the host cancels, the machine dies). Every
writer therefore writes to a hidden temporary file in the *same directory* (so
``os.replace`` is a rename on one file system, which is atomic) and renames it
onto the final name only once the bytes are on disk.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterator

# ".{name}.retake-tmp-{pid}{ext}": hidden, tagged with the writing process so a
# later run can tell its own temps from those of dead processes.
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.retake-tmp-(?P<pid>\d+)(?P<ext>\.[^.]*)?$")


def temp_path_for(final_path: str) -> str:
    """The temporary path ``atomic_output`` uses for ``final_path``.

    Same directory, same extension (OpenImageIO, OpenEXR and FFmpeg pick the
    format from the extension), hidden dot-name, tagged with this process id.
    """
    directory, base = os.path.split(os.path.abspath(final_path))
    stem, ext = os.path.splitext(base)
    return os.path.join(directory, f".{stem}.retake-tmp-{os.getpid()}{ext}")


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: str) -> None:
    # Makes the rename itself durable. Not every platform/file system allows
    # opening a directory (Windows, some network mounts): best effort only.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(final_path: str) -> Iterator[str]:
    """Yield a temporary path to write; on success it replaces ``final_path``.

    On success the temp file is fsynced and renamed with ``os.replace`` (an
    existing final file is replaced atomically). On any exception the temp file
    is removed and the exception re-raised: the final name is left untouched.
    A writer that never created the temp file is an error (nothing to publish).
    """
    final_path = os.path.abspath(final_path)
    directory = os.path.dirname(final_path)
    os.makedirs(directory, exist_ok=True)
    tmp = temp_path_for(final_path)
    try:
        yield tmp
        if not os.path.exists(tmp):
            raise FileNotFoundError(errno.ENOENT, "writer produced no file", tmp)
        _fsync_path(tmp)
        os.replace(tmp, final_path)
        _fsync_directory(directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True


def remove_stale_temps(directory: str) -> list[str]:
    """Remove Retake temp files left in ``directory`` by processes that are gone.

    Temps of live processes (another render writing into the same folder, or
    this one) are kept. Returns the paths removed. A missing directory is fine.
    """
    removed: list[str] = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return removed
    for name in names:
        match = _TEMP_RE.match(name)
        if match is None or _pid_alive(int(match.group("pid"))):
            continue
        path = os.path.join(directory, name)
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            os.remove(path)
            removed.append(path)
    return removed


def write_text_atomic(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically: a crash leaves the old file or the new, never half."""
    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
