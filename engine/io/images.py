"""Read DPX, TIFF, PNG and JPEG frames through OpenImageIO.

Values are what OpenImageIO makes of the file: integer formats normalised to
0..1 (a 10-bit DPX code 1023 reads 1.0), float TIFFs as stored. No colour
conversion happens here: the values are file-encoded (often display- or
log-encoded), and the colour module converts them by the plate's colour space.

Nothing in this module imports torch.
"""
from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import numpy as np
import OpenImageIO as oiio

from engine.errors import InputError
from engine.io.header import ImageHeader, Window

_HINT_DAMAGED = "re-export the frame or check the transfer (a truncated or corrupted copy)"
_MAX_PIXELS = 1 << 28  # 16K x 16K: anything larger is a damaged header

# Attributes worth showing an artist, OIIO name -> shown name.
_USEFUL_ATTRIBUTES = (
    "oiio:BitsPerSample",
    "compression",
    "dpx:Transfer",
    "dpx:Colorimetric",
    "dpx:ImageDescriptor",
    "Software",
    "DateTime",
    "ImageDescription",
    "Orientation",
)

# PNG chunks that state how the values are encoded; without one, OIIO assumes
# sRGB, but the file itself says nothing.
_PNG_COLOUR_CHUNKS = (b"sRGB", b"gAMA", b"iCCP", b"cHRM")


def read_header(path: str | Path) -> ImageHeader:
    """Describe a DPX/TIFF/PNG/JPEG file's first image.

    ``selected`` is ``R G B`` (plus ``A``) or ``Y`` (plus ``A``) for grey
    images; ``pixel_type`` the stored type ("uint8", "uint16", "half",
    "float"; 10-/12-bit DPX report "uint16" with ``oiio:BitsPerSample``
    in ``attributes``). Raises ``InputError`` when the file cannot be read.
    """
    path = str(path)
    inp = _open(path)
    try:
        return _header(path, inp)
    finally:
        inp.close()


def read_image(path: str | Path) -> np.ndarray:
    """Read the whole image over its display window.

    Returns (H, W, C) float32 file-encoded values, C = 3 (RGB) or 4 (RGBA);
    grey images are replicated to RGB. Outside the data window (rare outside
    DPX/TIFF with offsets) pixels are 0.
    """
    path = str(path)
    inp = _open(path)
    try:
        return _pixels(path, inp)
    finally:
        inp.close()


def read_header_and_image(path: str | Path) -> tuple[ImageHeader, np.ndarray]:
    """Both of the above with one open of the file."""
    path = str(path)
    inp = _open(path)
    try:
        return _header(path, inp), _pixels(path, inp)
    finally:
        inp.close()


def _open(path: str) -> oiio.ImageInput:
    if not Path(path).is_file():
        raise InputError("file not found", path=path, hint="check the path and the frame range")
    inp = oiio.ImageInput.open(path)
    if inp is None:
        detail = oiio.geterror().strip().splitlines()
        raise InputError(
            f"not a readable image ({detail[0] if detail else 'no detail from the library'})",
            path=path,
            hint=_HINT_DAMAGED,
        )
    return inp


def _layout(spec: oiio.ImageSpec) -> tuple[list[int], bool]:
    """(channel indices to read in order, grey?) following OIIO's channel names."""
    names = list(spec.channelnames)
    if spec.nchannels >= 3:
        alpha = [spec.alpha_channel] if spec.alpha_channel >= 3 else ([3] if spec.nchannels >= 4 else [])
        return [0, 1, 2, *alpha], False
    # 1 or 2 channels: grey, or grey + alpha.
    alpha = [1] if spec.nchannels == 2 and (spec.alpha_channel == 1 or names[1] == "A") else []
    return [0, *alpha], True


def _header(path: str, inp: oiio.ImageInput) -> ImageHeader:
    spec = inp.spec()
    display = Window(spec.full_x, spec.full_y, spec.full_x + spec.full_width - 1, spec.full_y + spec.full_height - 1)
    data = Window(spec.x, spec.y, spec.x + spec.width - 1, spec.y + spec.height - 1)
    indices, grey = _layout(spec)
    names = list(spec.channelnames)
    if grey:
        selected = ("Y", *(["A"] if len(indices) == 2 else []))
    else:
        selected = tuple(names[i] for i in indices)
    attributes: dict[str, str] = {}
    for name in _USEFUL_ATTRIBUTES:
        value = spec.getattribute(name)
        if value not in (None, ""):
            attributes[name] = str(value)[:200]
    return ImageHeader(
        path=path,
        file_format=inp.format_name(),
        display_window=display,
        data_window=data,
        pixel_aspect=float(spec.getattribute("PixelAspectRatio") or 1.0),
        channels=tuple(names),
        selected=selected,
        pixel_type=str(spec.format),
        compression=str(spec.getattribute("compression")) if spec.getattribute("compression") else None,
        fps=_fps(spec),
        timecode=_timecode(spec),
        colorspace_hint=_colorspace_hint(path, inp.format_name(), spec),
        attributes=attributes,
    )


def _fps(spec: oiio.ImageSpec) -> Fraction | None:
    """DPX headers carry a frame rate (OIIO ``FramesPerSecond``, a rational)."""
    value = spec.getattribute("FramesPerSecond")
    if isinstance(value, (tuple, list)) and len(value) == 2 and value[0] > 0 and value[1] > 0:
        return Fraction(int(value[0]), int(value[1]))
    if isinstance(value, (int, float)) and value > 0:
        return Fraction(value).limit_denominator(1001)
    return None


def _timecode(spec: oiio.ImageSpec) -> str | None:
    """DPX and some TIFFs carry a SMPTE timecode (OIIO ``smpte:TimeCode``, packed BCD)."""
    value = spec.getattribute("smpte:TimeCode")
    if not isinstance(value, (tuple, list)) or not value:
        return None
    word = int(value[0])
    digits = [((word >> s) & 0xF) + 10 * ((word >> (s + 4)) & m) for s, m in ((24, 3), (16, 7), (8, 7), (0, 3))]
    return "{:02d}:{:02d}:{:02d}:{:02d}".format(*digits)


def _colorspace_hint(path: str, file_format: str, spec: oiio.ImageSpec) -> str | None:
    """OIIO's ``oiio:ColorSpace``, but only where the file itself states it.

    OIIO assumes sRGB for every PNG and JPEG; a PNG states its encoding with
    an sRGB/gAMA/iCCP/cHRM chunk, a JPEG with an ICC profile or EXIF
    ColorSpace = 1 (sRGB). Other formats get a colour space from OIIO only
    when their own tags say so.
    """
    name = spec.getattribute("oiio:ColorSpace")
    if not name:
        return None
    if file_format == "png" and not _png_states_colour(path):
        return None
    if file_format == "jpeg":
        icc = spec.getattribute("ICCProfile")
        if not icc and spec.getattribute("Exif:ColorSpace") != 1:
            return None
    return str(name)


def _png_states_colour(path: str) -> bool:
    """True when a PNG has a chunk that states its colour encoding (before the pixels)."""
    try:
        with open(path, "rb") as handle:
            if handle.read(8) != b"\x89PNG\r\n\x1a\n":
                return False
            while True:
                head = handle.read(8)
                if len(head) < 8:
                    return False
                length, kind = struct.unpack(">I4s", head)
                if kind in _PNG_COLOUR_CHUNKS:
                    return True
                if kind in (b"IDAT", b"IEND"):
                    return False
                handle.seek(length + 4, 1)  # chunk data and CRC
    except OSError:
        return False


def _pixels(path: str, inp: oiio.ImageInput) -> np.ndarray:
    spec = inp.spec()
    if spec.width * spec.height > _MAX_PIXELS or spec.full_width * spec.full_height > _MAX_PIXELS:
        raise InputError(f"implausible image size {spec.width}x{spec.height}", path=path, hint=_HINT_DAMAGED)
    indices, grey = _layout(spec)
    pixels = inp.read_image(0, 0, 0, spec.nchannels, "float")
    if pixels is None or inp.has_error:
        message = inp.geterror().strip().splitlines()
        raise InputError(
            f"damaged pixel data ({message[0] if message else 'no detail from the library'})",
            path=path,
            hint=_HINT_DAMAGED,
        )
    pixels = np.asarray(pixels, dtype=np.float32).reshape(spec.height, spec.width, spec.nchannels)
    columns = [pixels[:, :, i] for i in indices]
    if grey:
        columns = [columns[0], columns[0], columns[0], *columns[1:]]
    data = np.stack(columns, axis=-1)
    out = np.zeros((spec.full_height, spec.full_width, data.shape[2]), np.float32)
    # Place the data window inside the display window, cropping what lies outside.
    x0, y0 = max(spec.x, spec.full_x), max(spec.y, spec.full_y)
    x1 = min(spec.x + spec.width, spec.full_x + spec.full_width)
    y1 = min(spec.y + spec.height, spec.full_y + spec.full_height)
    if x0 < x1 and y0 < y1:
        out[y0 - spec.full_y : y1 - spec.full_y, x0 - spec.full_x : x1 - spec.full_x] = data[
            y0 - spec.y : y1 - spec.y, x0 - spec.x : x1 - spec.x
        ]
    return out
