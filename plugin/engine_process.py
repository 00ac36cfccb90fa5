"""The engine as a child process: ``retake run JOB --progress json`` and ``retake preview``.

Hosts never import the engine's heavy parts (torch, OpenImageIO, OpenColorIO): Nuke
and Resolve bring their own Python. They launch Retake's own ``retake`` command,
read one JSON object per line from its stdout (``start``, ``frame``, ``warning``,
``done``, ``error``; see ``engine.pipeline`` and ``engine.cli``) and cancel it with
SIGTERM, after which the engine finishes the frame it is on, keeps every whole
frame and exits 130.

Standard library only.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import weakref
from collections import deque
from pathlib import Path
from typing import Any, Callable

from plugin.hosts.base import HostError

EventCallback = Callable[[dict[str, Any]], None]
CANCELLED_EXIT = 130
_STDERR_LINES = 40


def _venv_command(home: Path) -> Path:
    if os.name == "nt":
        return home / ".venv" / "Scripts" / "retake.exe"
    return home / ".venv" / "bin" / "retake"


def find_retake(setting: str | None = None) -> list[str]:
    """The command that starts Retake's engine, as an argv prefix.

    In order: ``setting`` (a panel/host setting: the ``retake`` executable or a Retake
    folder), ``$RETAKE_BIN``, ``$RETAKE_HOME/.venv/bin/retake``, the checkout this
    plugin was loaded from, then ``retake`` on the PATH. HostError names what to set.
    """
    candidates: list[tuple[str, Path]] = []
    for origin, value in (("the Retake setting", setting), ("$RETAKE_BIN", os.environ.get("RETAKE_BIN"))):
        if value:
            path = Path(value).expanduser()
            candidates.append((origin, _venv_command(path) if path.is_dir() else path))
    if os.environ.get("RETAKE_HOME"):
        candidates.append(("$RETAKE_HOME", _venv_command(Path(os.environ["RETAKE_HOME"]).expanduser())))
    candidates.append(("this checkout", _venv_command(Path(__file__).resolve().parents[1])))
    for _origin, path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return [str(path)]
    on_path = shutil.which("retake")
    if on_path:
        return [on_path]
    tried = "; ".join(f"{origin}: {path}" for origin, path in candidates)
    raise HostError(f"cannot find Retake's engine (tried {tried})",
                    hint="run ./setup.sh in your Retake folder and set RETAKE_HOME to that folder")


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # The host's own Python settings must not leak into Retake's environment.
    for name in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP"):
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class EngineProcess:
    """One ``retake run`` child. ``on_event`` gets each progress event, on a reader thread.

    The last event is always ``done`` or ``error``: when the engine dies without
    saying why (killed, crashed), an ``error`` event is made from its exit code and
    the tail of its stderr, so the panel can always show what happened.
    """

    _live: "weakref.WeakSet[EngineProcess]" = weakref.WeakSet()

    def __init__(self, job_path: str, on_event: EventCallback, *, retake: list[str] | None = None,
                 extra_args: list[str] | None = None) -> None:
        self.job_path = job_path
        self.on_event = on_event
        self.command = (retake or find_retake()) + ["run", job_path, "--progress", "json"] + (extra_args or [])
        self.exit_code: int | None = None
        self.cancelled = False
        self.last_event: dict[str, Any] | None = None
        self._process: subprocess.Popen[str] | None = None
        self._stderr: deque[str] = deque(maxlen=_STDERR_LINES)
        self._threads: list[threading.Thread] = []
        self._finished = threading.Event()

    def start(self) -> "EngineProcess":
        try:
            self._process = subprocess.Popen(
                self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                text=True, bufsize=1, env=_child_env())
        except OSError as error:
            raise HostError(f"cannot start Retake's engine {self.command[0]!r}: {error.strerror}",
                            hint="check RETAKE_HOME and run ./setup.sh there") from None
        EngineProcess._live.add(self)
        self._threads = [threading.Thread(target=self._read_stdout, name="retake-stdout", daemon=True),
                         threading.Thread(target=self._read_stderr, name="retake-stderr", daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def _emit(self, event: dict[str, Any]) -> None:
        self.last_event = event
        self.on_event(event)

    def _read_stdout(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            line = line.strip()
            if not line.startswith("{"):
                continue  # not ours (a library printing to stdout): keep only events
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict) and "event" in event:
                self._emit(event)
        code = self._process.wait()
        self.exit_code = code
        for thread in self._threads[1:]:
            thread.join(timeout=5)
        last = (self.last_event or {}).get("event")
        if last not in ("done", "error"):
            if code == CANCELLED_EXIT or self.cancelled:
                message = "cancelled: finished frames are kept and a re-run resumes"
            else:
                tail = " | ".join(line for line in self._stderr if line.strip())[-800:]
                message = f"the engine stopped with exit code {code}" + (f": {tail}" if tail else "")
            self._emit({"event": "error", "exit_code": code, "message": message, "path": self.job_path,
                        "frame": None, "hint": None if self.cancelled else "see the message; run the job with "
                        f"`retake run {self.job_path}` in a terminal for details"})
        self._finished.set()

    def _read_stderr(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        for line in self._process.stderr:
            self._stderr.append(line.rstrip("\n"))

    def cancel(self) -> None:
        """Ask the engine to stop before its next frame (SIGTERM; on Windows, terminate)."""
        self.cancelled = True
        process = self._process
        if process is None or process.poll() is not None:
            return
        if os.name == "nt":
            process.terminate()
        else:
            process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """Stop the engine now (SIGKILL): for a host that is closing; frames already written stay whole."""
        self.cancelled = True
        if self._process is not None and self._process.poll() is None:
            self._process.kill()

    def running(self) -> bool:
        return self._process is not None and not self._finished.is_set()

    @classmethod
    def running_processes(cls) -> list["EngineProcess"]:
        """Engines this Python started that have not finished (a host closing kills them)."""
        return [process for process in list(cls._live) if process.running()]

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the engine and the last event; the exit code (None on timeout)."""
        self._finished.wait(timeout)
        return self.exit_code

    @property
    def stderr_tail(self) -> str:
        return "\n".join(self._stderr)


def run_preview(source: str, frames: list[int], out_pattern: str, *, size: int = 480, result: bool = False,
                colorspace: str | None = None, retake: list[str] | None = None, timeout: float = 120.0,
                overlays: list[str] | None = None) -> list[str]:
    """Display PNGs of ``frames`` of a plate or job, made by ``retake preview``; the files written.

    ``out_pattern`` holds ``####`` when there are several frames. HostError carries
    the engine's message when it fails (a missing frame, an unknown colour space).
    """
    command = (retake or find_retake()) + ["preview", source, "--out", out_pattern, "--size", str(size)]
    for frame in frames:
        command += ["--frame", str(frame)]
    if result:
        command.append("--result")
    if colorspace:
        command += ["--colorspace", colorspace]
    for overlay in overlays or []:
        command += ["--overlay", overlay]
    return _run_engine(command, f"cannot make a preview of {source}", timeout)


def run_track_faces(plate: str, out: str, *, colorspace: str | None = None, retake: list[str] | None = None,
                    timeout: float = 3600.0) -> list[str]:
    """``retake track faces PLATE --out OUT`` (JSON for the panel's overlay); the files written."""
    command = (retake or find_retake()) + ["track", "faces", plate, "--out", out, "--progress", "none"]
    if colorspace:
        command += ["--colorspace", colorspace]
    _run_engine(command, f"cannot track the faces of {plate}", timeout)
    return [out]


def _run_engine(command: list[str], what: str, timeout: float) -> list[str]:
    """Run a short engine command; its stdout lines, or HostError with the engine's own message."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=_child_env(),
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise HostError(f"{what}: {error}", hint="check RETAKE_HOME") from None
    if done.returncode != 0:
        message = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit code {done.returncode}"
        raise HostError(message.removeprefix("retake: error: ").removeprefix("retake: "))
    return [line for line in done.stdout.splitlines() if line.strip()]

