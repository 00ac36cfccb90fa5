"""What a file or a plate says about its pixels: windows, primaries, timing.

These are plain frozen dataclasses: the contract between the readers
(``engine.io.exr``, ``engine.io.images``, ``engine.io.movies``, ``engine.io.plates``),
the colour module and the pipeline. Nothing here touches pixels.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction


@dataclass(frozen=True)
class Window:
    """An inclusive pixel box, as OpenEXR stores it (``xMin, yMin, xMax, yMax``)."""

    x_min: int
    y_min: int
    x_max: int
    y_max: int

    @property
    def width(self) -> int:
        return self.x_max - self.x_min + 1

    @property
    def height(self) -> int:
        return self.y_max - self.y_min + 1

    @classmethod
    def of_size(cls, width: int, height: int) -> "Window":
        return cls(0, 0, width - 1, height - 1)


@dataclass(frozen=True)
class Chromaticities:
    """CIE xy of the red, green and blue primaries and the white point (OpenEXR ``chromaticities``)."""

    red: tuple[float, float]
    green: tuple[float, float]
    blue: tuple[float, float]
    white: tuple[float, float]

    def close_to(self, other: "Chromaticities", tolerance: float = 1e-3) -> bool:
        mine = (*self.red, *self.green, *self.blue, *self.white)
        theirs = (*other.red, *other.green, *other.blue, *other.white)
        return all(abs(a - b) <= tolerance for a, b in zip(mine, theirs))


# SMPTE ST 2065-1 (ACES AP0): the primaries an ACES container must declare.
AP0 = Chromaticities((0.7347, 0.2653), (0.0, 1.0), (0.0001, -0.0770), (0.32168, 0.33767))
# ACEScg (AP1).
AP1 = Chromaticities((0.713, 0.293), (0.165, 0.830), (0.128, 0.044), (0.32168, 0.33767))
# ITU-R BT.709 / sRGB, D65: also what OpenEXR assumes when a file has no chromaticities.
REC709 = Chromaticities((0.64, 0.33), (0.30, 0.60), (0.15, 0.06), (0.3127, 0.3290))
REC2020 = Chromaticities((0.708, 0.292), (0.170, 0.797), (0.131, 0.046), (0.3127, 0.3290))
P3D65 = Chromaticities((0.680, 0.320), (0.265, 0.690), (0.150, 0.060), (0.3127, 0.3290))


@dataclass(frozen=True)
class ImageHeader:
    """One image file's header, for the part/view a reader would pick.

    ``channels`` are all channel names of the chosen part; ``selected`` are the
    ones a read returns, in order (``R G B``, ``R G B A`` or ``Y``/``Y A``).
    ``colorspace_hint`` is an OCIO colour-space name the file itself implies
    (ACES container flag, ``oiio:ColorSpace``), or None when it says nothing.
    """

    path: str
    file_format: str  # "openexr", "png", "tiff", "dpx", ...
    display_window: Window
    data_window: Window
    pixel_aspect: float
    channels: tuple[str, ...]
    selected: tuple[str, ...]
    pixel_type: str  # "half", "float", "uint", "uint8", "uint16", ...
    parts: tuple[str, ...] = ()
    views: tuple[str, ...] = ()
    part: str | None = None
    view: str | None = None
    chromaticities: Chromaticities | None = None
    aces_container: bool = False
    compression: str | None = None
    fps: Fraction | None = None
    timecode: str | None = None
    colorspace_hint: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PlateInfo:
    """A whole plate: a frame sequence or a movie, on absolute frame numbers.

    ``first``/``last`` is the plate's range (the requested one, or what is on
    disk); ``missing`` lists the frame numbers inside it with no file.
    ``header`` describes the first present frame (for a movie: its stream).
    """

    path: str  # the pattern or movie path as the user gave it
    kind: str  # "sequence" or "movie"
    first: int
    last: int
    missing: tuple[int, ...]
    header: ImageHeader
    fps: Fraction | None
    timecode: str | None

    @property
    def frame_count(self) -> int:
        return self.last - self.first + 1

    @property
    def width(self) -> int:
        return self.header.display_window.width

    @property
    def height(self) -> int:
        return self.header.display_window.height
