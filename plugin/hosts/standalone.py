"""Standalone adapter: no host application, the plate is a file the artist opens.

``retake panel`` runs in Retake's own environment, so this adapter may read the plate's
header with the engine directly (no pixels: the frames and previews still come from the
engine). Keyframes live in the panel; the result stays where it was written.
"""
from __future__ import annotations

import os

from plugin.hosts.base import ColourContext, Host, HostError, KeyframeMark, OutputPlate, PlateRef


class StandaloneHost(Host):
    name = "Standalone"

    def __init__(self, plate_path: str | None = None, colorspace: str | None = None) -> None:
        self.plate_path = plate_path
        self.colorspace = colorspace
        self.results: list[OutputPlate] = []

    def set_plate_path(self, path: str) -> None:
        self.plate_path = path

    def plate(self) -> PlateRef:
        if not self.plate_path:
            raise HostError("no plate is open", hint="click Open plate… and pick a frame of the sequence or a movie")
        from engine.errors import InputError
        from engine.io.plates import open_plate

        try:
            with open_plate(self.plate_path) as plate:
                info = plate.info
        except InputError as error:
            raise HostError(str(error)) from None
        return PlateRef(path=info.path if info.kind == "movie" else _pattern_of(plate), first=info.first,
                        last=info.last, colorspace=self.colorspace, label=os.path.basename(info.path), width=info.width,
                        height=info.height)

    def keyframes(self) -> list[KeyframeMark]:
        return []

    def colour(self) -> ColourContext:
        return ColourContext(None, ("standalone: the job's config, else $OCIO, else OCIO's studio config",))

    def put_back(self, output: OutputPlate) -> str:
        self.results.append(output)
        return f"wrote {output.path} ({output.first}-{output.last}, {output.colorspace})"


def _pattern_of(plate: object) -> str:
    """The ``####`` pattern of an opened sequence (the user may have picked one frame of it)."""
    first = plate.info.first  # type: ignore[attr-defined]
    path = plate.frame_path(first)  # type: ignore[attr-defined]
    if path is None:
        return plate.info.path  # type: ignore[attr-defined]
    text = f"{first:04d}"
    head, sep, tail = path.rpartition(text)
    return head + "#" * len(text) + tail if sep else plate.info.path  # type: ignore[attr-defined]
