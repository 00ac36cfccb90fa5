"""The one interface every host adapter implements, and the data it hands over.

A host gives the panel a plate, the keyframe markers the artist set and the colour
context; the panel builds a job, the engine renders it out of process, and the host
takes back the output plate (a Read node in Nuke, a clip on a new track in Resolve).

Standard library only: this runs inside Nuke's and Resolve's own Python.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # plugin.jobs imports this module
    from plugin.jobs import RenderSettings


class HostError(Exception):
    """Something in the host is not as Retake needs it. ``str()`` says what and what to do."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message + (f" — {self.hint}" if self.hint else "")


@dataclass(frozen=True)
class PlateRef:
    """Where the host's plate is on disk and how the host reads it.

    ``path`` is a frame pattern the engine reads (``plate.####.exr``, ``plate.%04d.exr``,
    Resolve's ``plate.[1001-1048].exr``) or a movie; ``first``/``last`` the absolute
    frames the host uses (inclusive); ``colorspace`` an OCIO colour-space name or None
    (the engine then reads it from the file). ``label`` names the plate in the host
    (a node name, a clip name).
    """

    path: str
    first: int
    last: int
    colorspace: str | None = None
    label: str = ""
    width: int | None = None
    height: int | None = None
    fps: str | None = None

    @property
    def frame_count(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class KeyframeMark:
    """A keyframe marker in the host: an absolute plate frame and what the artist said there."""

    frame: int
    prompt: str | None = None
    image: str | None = None
    colorspace: str | None = None  # of ``image``; None: what the file says
    reference: str | None = None
    strength: float = 1.0


@dataclass(frozen=True)
class ColourContext:
    """The host's colour settings as OCIO: a config (path or ``ocio://`` URI, None: the
    engine's own order) and notes that say what could not be mapped and what was assumed."""

    config: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class OutputPlate:
    """What a render wrote: an EXR (or image) sequence pattern on the source's frame numbers."""

    path: str
    first: int
    last: int
    colorspace: str = "ACES2065-1"


class Host(ABC):
    """A host application as the panel sees it. Adapters stay thin: host API calls only."""

    name: str = "host"

    @abstractmethod
    def plate(self) -> PlateRef:
        """The plate to transform; HostError when there is none (say where to connect one)."""

    @abstractmethod
    def keyframes(self) -> list[KeyframeMark]:
        """The keyframe markers the artist set in the host, sorted by frame (may be empty)."""

    @abstractmethod
    def colour(self) -> ColourContext:
        """The host's OCIO context."""

    @abstractmethod
    def put_back(self, output: OutputPlate) -> str:
        """Bring the rendered plate into the host; returns what was done, for the panel."""

    def keyframe_images(self, frames: list[int], folder: str) -> dict[int, tuple[str, str | None]]:
        """Images of the keyframes the host can render (Nuke's second input):
        frame -> (file, its OCIO colour space or None). Empty when the host has none."""
        return {}

    def initial_settings(self) -> "RenderSettings | None":
        """Settings the host already holds (a Nuke node's knobs), for the panel to start from."""
        return None

    def current_frame(self) -> int | None:
        """The frame the host is looking at (the playhead), or None."""
        return None

    def show_frame(self, frame: int) -> None:
        """Move the host to ``frame`` (the panel's Jump); hosts that cannot, ignore it."""

    def default_output(self, plate: PlateRef) -> str:
        """Where a render goes when the artist names nothing: ``retake/`` beside the plate."""
        import os

        directory, name = os.path.split(plate.path)
        stem = name.split(".")[0] or "plate"
        return os.path.join(directory, "retake", f"{stem}_retake.####.exr")
