"""Read OpenEXR headers and pixels through OpenImageIO.

OpenImageIO is the reader here because it exposes multi-part files as
subimages, keeps the EXR attributes (``multiView``, ``view``,
``chromaticities``, ``acesImageContainerFlag``, ``framesPerSecond``,
``timeCode``) and turns a damaged file into an error rather than a crash
(checked against OpenEXR's fuzzing corpus in ``tests/test_damaged.py``).

Which channels are read (``ImageHeader.selected``):

* a part and a view are chosen: by the caller (part by name or index, view by
  name) or, by default, the first part/view that has colour channels;
* in a multi-view part (``multiView`` attribute) the first listed view is the
  default view, whose channels may be unprefixed (``R``) or prefixed
  (``right.R``); other views' channels are prefixed (``left.R``);
* colour channels are ``R G B`` (plus ``A``) or luminance ``Y`` (plus ``A``);
  a ``Y`` image is replicated to RGB. A part with only some of R, G, B (e.g.
  only ``G``) reads the missing ones as 0, as Nuke does;
* other layers (``forward.u``, ``Z``, ``disparityL.x``) are listed in
  ``channels`` and never read.

Nothing in this module imports torch: ``retake info`` must start fast.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import OpenImageIO as oiio

from engine.errors import InputError
from engine.io.header import Chromaticities, ImageHeader, Window

# The first four bytes of every OpenEXR file.
_EXR_MAGIC = b"\x76\x2f\x31\x01"
# Larger images are treated as damaged headers: a fuzzed file can claim a
# 2^31-pixel window and make us allocate it. 2^28 pixels is 16K x 16K.
_MAX_PIXELS = 1 << 28
# Damaged files can claim absurd part counts.
_MAX_PARTS = 4096

_HINT_DAMAGED = "re-export the frame or check the transfer (a truncated or corrupted copy)"

# OIIO attribute name -> name shown in ImageHeader.attributes. These are the
# ones worth showing to an artist; the mapped ones (chromaticities, fps, ...)
# have their own fields.
_USEFUL_ATTRIBUTES = {
    "Copyright": "owner",
    "ImageDescription": "comments",
    "DateTime": "capDate",
    "Software": "software",
    "Artist": "artist",
    "openexr:lineOrder": "lineOrder",
    "utcOffset": "utcOffset",
    "reelName": "reelName",
    "imageCounter": "imageCounter",
    "cameraModel": "cameraModel",
    "lensModel": "lensModel",
    "oiio:ColorSpace": "oiio:ColorSpace",
}


@dataclass(frozen=True)
class _Choice:
    """What a read takes from a file: a subimage (part) and channel indices."""

    subimage: int
    part_name: str | None
    view: str | None
    selected: tuple[str, ...]
    # Index in the part's channel list for each of R, G, B (or Y), then A;
    # None for a colour channel the part lacks (read as 0).
    indices: tuple[int | None, ...]
    luminance: bool
    spec: oiio.ImageSpec


def read_header(path: str | Path, part: str | int | None = None, view: str | None = None) -> ImageHeader:
    """Describe one EXR file for the part/view a read would pick.

    ``part`` is a part name or a 0-based index (an int or a string of digits);
    ``view`` a view name (``left``, ``right``...). Raises ``InputError`` for a
    file that is missing, not an EXR, damaged, deep, or lacks the asked part,
    view or colour channels.
    """
    path = str(path)
    inp = _open(path)
    try:
        specs = _part_specs(inp, path)
        choice = _choose(specs, path, part, view)
        return _header(path, specs, choice)
    finally:
        inp.close()


def read_image(path: str | Path, part: str | int | None = None, view: str | None = None) -> np.ndarray:
    """Read the chosen part/view's colour channels over the display window.

    Returns (H, W, C) float32, file-encoded (scene-linear as stored) values,
    H and W the display window's size, C = 3 (R, G, B) or 4 (R, G, B, A).
    Pixels of the display window outside the data window are 0; data outside
    the display window is cropped. NaN and Inf are returned as stored.
    """
    path = str(path)
    inp = _open(path)
    try:
        specs = _part_specs(inp, path)
        choice = _choose(specs, path, part, view)
        return _read_pixels(inp, path, choice)
    finally:
        inp.close()


def read_header_and_image(
    path: str | Path, part: str | int | None = None, view: str | None = None
) -> tuple[ImageHeader, np.ndarray]:
    """Both of the above with one open of the file (the plate reader's path)."""
    path = str(path)
    inp = _open(path)
    try:
        specs = _part_specs(inp, path)
        choice = _choose(specs, path, part, view)
        return _header(path, specs, choice), _read_pixels(inp, path, choice)
    finally:
        inp.close()


# --- opening -------------------------------------------------------------------------------


def _open(path: str) -> oiio.ImageInput:
    """Open with OIIO's EXR reader; turn every failure into an InputError."""
    file = Path(path)
    if not file.is_file():
        raise InputError("file not found", path=path, hint="check the path and the frame range")
    try:
        with open(file, "rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise InputError(f"cannot read the file ({exc.strerror})", path=path, hint="check its permissions") from None
    if magic != _EXR_MAGIC:
        raise InputError(
            "not an OpenEXR file (it does not start with the OpenEXR magic number)",
            path=path,
            hint=_HINT_DAMAGED,
        )
    inp = oiio.ImageInput.open(path)
    if inp is None:
        # Files without an .exr extension reach OIIO's EXR reader by content;
        # when its header check fails, OIIO says "could not find a format
        # reader", which is misleading here: the magic number says it is EXR.
        detail = oiio.geterror().strip()
        if "could not find a format reader" in detail:
            detail = "the header is damaged"
        raise InputError(f"not a readable OpenEXR file ({detail})", path=path, hint=_HINT_DAMAGED)
    if inp.format_name() != "openexr":
        inp.close()
        raise InputError(f"not an OpenEXR file (read as {inp.format_name()})", path=path, hint=_HINT_DAMAGED)
    return inp


def _part_specs(inp: oiio.ImageInput, path: str) -> list[oiio.ImageSpec]:
    """The spec of every part (OIIO subimage), at full resolution (miplevel 0)."""
    specs: list[oiio.ImageSpec] = []
    while len(specs) < _MAX_PARTS and inp.seek_subimage(len(specs), 0):
        specs.append(inp.spec().copy() if hasattr(inp.spec(), "copy") else oiio.ImageSpec(inp.spec()))
    if not specs:
        raise InputError(f"not a readable OpenEXR file ({_error(inp)})", path=path, hint=_HINT_DAMAGED)
    return specs


def _error(inp: oiio.ImageInput) -> str:
    message = inp.geterror().strip() if inp.has_error else ""
    return message.splitlines()[0] if message else "no detail from the library"


# --- choosing part, view and channels -----------------------------------------------------


def _part_name(spec: oiio.ImageSpec, index: int) -> str | None:
    name = spec.getattribute("oiio:subimagename") or spec.getattribute("name")
    return str(name) if name else None


def _part_views(spec: oiio.ImageSpec) -> list[str | None]:
    """The views a part holds: its ``multiView`` list, its ``view``, or [None]."""
    multi = spec.getattribute("multiView")
    if isinstance(multi, (tuple, list)) and multi:
        return [str(v) for v in multi]
    if isinstance(multi, str) and multi:
        return [multi]
    single = spec.getattribute("view")
    if isinstance(single, str) and single:
        return [single]
    return [None]


def _channel_set(spec: oiio.ImageSpec, view: str | None, default_view: str | None) -> tuple[list[str], list[int | None], bool] | None:
    """Find colour channels of one view in a part: (names, indices, luminance) or None.

    Channels of ``view`` are ``view.R``; the default view's may also be
    unprefixed ``R``. A part with a single ``view`` attribute (multi-part
    stereo) names its channels unprefixed.
    """
    names = list(spec.channelnames)
    index = {name: i for i, name in enumerate(names)}
    prefixes: list[str] = []
    if view is not None:
        if view == default_view:
            prefixes.append("")
        prefixes.append(view + ".")
    else:
        prefixes.append("")
    for prefix in prefixes:
        rgb = [index.get(prefix + c) for c in "RGB"]
        alpha = index.get(prefix + "A")
        if any(i is not None for i in rgb):
            chosen = [prefix + c for c, i in zip("RGB", rgb) if i is not None]
            indices: list[int | None] = list(rgb)
            if alpha is not None:
                chosen.append(prefix + "A")
                indices.append(alpha)
            return chosen, indices, False
        y = index.get(prefix + "Y")
        if y is not None:
            chosen = [prefix + "Y"]
            indices = [y]
            if alpha is not None:
                chosen.append(prefix + "A")
                indices.append(alpha)
            return chosen, indices, True
    return None


def _choose(specs: list[oiio.ImageSpec], path: str, part: str | int | None, view: str | None) -> _Choice:
    """Pick the part, the view and the colour channels a read returns."""
    names = [_part_name(spec, i) for i, spec in enumerate(specs)]
    candidates = list(range(len(specs)))
    if part is not None:
        candidates = [_part_index(names, path, part)]
    for i in candidates:
        spec = specs[i]
        views = _part_views(spec)
        if view is not None:
            if view not in views:
                continue
            wanted = [view]
        else:
            wanted = views
        for v in wanted:
            # In a multi-part stereo file a part's channels are unprefixed
            # even though it carries a `view`: treat its only view as default.
            found = _channel_set(spec, v, views[0])
            if found is None:
                continue
            selected, indices, luminance = found
            if luminance and any(n.endswith(("RY", "BY")) for n in spec.channelnames):
                raise InputError(
                    "luminance/chroma (Y, RY, BY) EXR files are not supported",
                    path=path,
                    hint="re-export the frame as R, G, B",
                )
            return _Choice(i, names[i], v, tuple(selected), tuple(indices), luminance, spec)
    all_views = _all_views(specs)
    if view is not None and view not in all_views:
        raise InputError(
            f"no view {view!r} in the file (views: {_listing(all_views)})",
            path=path,
            hint="choose one of the file's views",
        )
    where = f"part {names[candidates[0]] or candidates[0]}" if part is not None else "any part"
    channels = ", ".join(specs[candidates[0]].channelnames) or "none"
    raise InputError(
        f"no colour channels (R, G, B or Y) in {where}" + (f" for view {view!r}" if view else "") + f"; channels: {channels}",
        path=path,
        hint="choose a part or view that has R, G, B, or re-export the frame with them",
    )


def _part_index(names: list[str | None], path: str, part: str | int) -> int:
    if isinstance(part, str):
        if part in names:
            return names.index(part)
        if not part.isdigit():
            raise InputError(
                f"no part named {part!r} (parts: {_listing([n or str(i) for i, n in enumerate(names)])})",
                path=path,
                hint="choose one of the file's parts by name or index",
            )
        part = int(part)
    if not 0 <= part < len(names):
        raise InputError(
            f"no part {part} (the file has {len(names)} part{'s' if len(names) != 1 else ''})",
            path=path,
            hint="part indices start at 0",
        )
    return part


def _all_views(specs: list[oiio.ImageSpec]) -> tuple[str, ...]:
    seen: list[str] = []
    for spec in specs:
        for v in _part_views(spec):
            if v is not None and v not in seen:
                seen.append(v)
    return tuple(seen)


def _listing(items: list[str] | tuple[str, ...]) -> str:
    return ", ".join(items) if items else "none"


# --- header --------------------------------------------------------------------------------


def _windows(spec: oiio.ImageSpec) -> tuple[Window, Window]:
    """(display window, data window) in OpenEXR's inclusive coordinates."""
    display = Window(spec.full_x, spec.full_y, spec.full_x + spec.full_width - 1, spec.full_y + spec.full_height - 1)
    data = Window(spec.x, spec.y, spec.x + spec.width - 1, spec.y + spec.height - 1)
    return display, data


def _header(path: str, specs: list[oiio.ImageSpec], choice: _Choice) -> ImageHeader:
    spec = choice.spec
    display, data = _windows(spec)
    names = [_part_name(s, i) for i, s in enumerate(specs)]
    # A single unnamed part is not worth listing as a "part".
    parts = tuple(n or str(i) for i, n in enumerate(names)) if len(specs) > 1 or names[0] else ()
    aces = _int_attribute(spec, "acesImageContainerFlag") == 1
    attributes = _attributes(spec)
    timecode, drop_frame = _timecode(spec)
    if drop_frame:
        attributes["dropFrame"] = "true"
    if spec.tile_width:
        attributes["tiles"] = f"{spec.tile_width}x{spec.tile_height}"
    return ImageHeader(
        path=path,
        file_format="openexr",
        display_window=display,
        data_window=data,
        pixel_aspect=float(spec.getattribute("PixelAspectRatio") or 1.0),
        channels=tuple(spec.channelnames),
        selected=choice.selected,
        pixel_type=_pixel_type(spec, [i for i in choice.indices if i is not None]),
        parts=parts,
        views=_all_views(specs),
        part=choice.part_name if parts else None,
        view=choice.view,
        chromaticities=_chromaticities(spec),
        aces_container=aces,
        compression=_str_attribute(spec, "compression"),
        fps=_fps(spec),
        timecode=timecode,
        colorspace_hint="ACES2065-1" if aces else None,
        attributes=attributes,
    )


def _pixel_type(spec: oiio.ImageSpec, indices: list[int]) -> str:
    """The stored type of the selected channels: "half", "float", "uint" or e.g. "half/float"."""
    types: list[str] = []
    for i in indices:
        name = str(spec.channelformat(i))
        if name not in types:
            types.append(name)
    return "/".join(types)


def _chromaticities(spec: oiio.ImageSpec) -> Chromaticities | None:
    """The file's primaries and white, or None when it has no attribute (Rec.709 then applies)."""
    value = spec.getattribute("chromaticities")
    if not isinstance(value, (tuple, list)) or len(value) != 8:
        return None
    v = [float(x) for x in value]
    return Chromaticities((v[0], v[1]), (v[2], v[3]), (v[4], v[5]), (v[6], v[7]))


def _fps(spec: oiio.ImageSpec) -> Fraction | None:
    value = spec.getattribute("framesPerSecond")
    if isinstance(value, (tuple, list)) and len(value) == 2 and value[1]:
        return Fraction(int(value[0]), int(value[1]))
    if isinstance(value, (int, float)) and value > 0:
        return Fraction(value).limit_denominator(1001)
    return None


def _timecode(spec: oiio.ImageSpec) -> tuple[str | None, bool]:
    """("HH:MM:SS:FF", drop frame) from the SMPTE ``timeCode`` attribute (packed BCD).

    OIIO returns the attribute as (time and flags, user data); the first word
    holds BCD digits as SMPTE 12M packs them: frames in bits 0-5, drop-frame
    flag bit 6, seconds 8-14, minutes 16-22, hours 24-29.
    """
    value = spec.getattribute("smpte:TimeCode")
    if not isinstance(value, (tuple, list)) or not value:
        return None, False
    word = int(value[0])

    def bcd(shift: int, tens_bits: int) -> int:
        units = (word >> shift) & 0xF
        tens = (word >> (shift + 4)) & ((1 << tens_bits) - 1)
        return tens * 10 + units

    frames, seconds, minutes, hours = bcd(0, 2), bcd(8, 3), bcd(16, 3), bcd(24, 2)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}:{frames:02d}", bool(word & (1 << 6))


def _int_attribute(spec: oiio.ImageSpec, name: str) -> int | None:
    value = spec.getattribute(name)
    return int(value) if isinstance(value, (int, float)) else None


def _str_attribute(spec: oiio.ImageSpec, name: str) -> str | None:
    value = spec.getattribute(name)
    return str(value) if value not in (None, "") else None


def _attributes(spec: oiio.ImageSpec) -> dict[str, str]:
    """A few attributes worth showing, as strings (EXR names where EXR has them)."""
    found: dict[str, str] = {}
    for oiio_name, shown in _USEFUL_ATTRIBUTES.items():
        value = spec.getattribute(oiio_name)
        if value is None or value == "":
            continue
        if isinstance(value, (tuple, list)):
            value = " ".join(str(v) for v in value)
        found[shown] = str(value)[:200]
    return found


# --- pixels --------------------------------------------------------------------------------


def _read_pixels(inp: oiio.ImageInput, path: str, choice: _Choice) -> np.ndarray:
    spec = choice.spec
    display, data = _windows(spec)
    if spec.deep:
        raise InputError(
            "deep EXR files are not supported",
            path=path,
            hint="flatten it first (e.g. Nuke DeepToImage) and write a flat EXR",
        )
    for window, what in ((display, "display"), (data, "data")):
        if window.width <= 0 or window.height <= 0 or window.width * window.height > _MAX_PIXELS:
            raise InputError(
                f"implausible {what} window {window.width}x{window.height} (a damaged header?)",
                path=path,
                hint=_HINT_DAMAGED,
            )
    present = [i for i in choice.indices if i is not None]
    # Read the smallest contiguous channel span holding the selected channels
    # (one decode of each chunk), in the stored type so that uint channels
    # (IDs, counts) keep their values instead of being normalised to 0..1.
    begin, end = min(present), max(present) + 1
    uint = "uint" in _pixel_type(spec, present).split("/")
    pixels = inp.read_image(choice.subimage, 0, begin, end, "uint" if uint else "float")
    if pixels is None or inp.has_error:
        raise InputError(
            f"damaged pixel data in an OpenEXR file ({_error(inp)})",
            path=path,
            hint=_HINT_DAMAGED,
        )
    pixels = np.asarray(pixels).reshape(data.height, data.width, end - begin)
    if not uint and not choice.luminance and tuple(choice.indices) == tuple(range(begin, end)) and data == display:
        # A plain plate (its channels in order over its whole display window, the usual case):
        # OpenImageIO's array is the frame already; the general path below copies it 3 times
        # (a 1080p PIZ frame read in 41 ms instead of 55 on the 2-core CPU).
        return np.ascontiguousarray(pixels, dtype=np.float32)
    columns = [
        pixels[:, :, i - begin].astype(np.float32) if i is not None else np.zeros((data.height, data.width), np.float32)
        for i in choice.indices
    ]
    if choice.luminance:
        # Y (and A): replicate luminance to R, G, B.
        columns = [columns[0], columns[0], columns[0], *columns[1:]]
    stacked = np.stack(columns, axis=-1)
    return _place_in_display(stacked, data, display)


def _place_in_display(pixels: np.ndarray, data: Window, display: Window) -> np.ndarray:
    """Put (h, w, C) data-window pixels into a zero (H, W, C) display-window image."""
    out = np.zeros((display.height, display.width, pixels.shape[2]), np.float32)
    x0, y0 = max(data.x_min, display.x_min), max(data.y_min, display.y_min)
    x1, y1 = min(data.x_max, display.x_max), min(data.y_max, display.y_max)
    if x0 <= x1 and y0 <= y1:
        out[y0 - display.y_min : y1 - display.y_min + 1, x0 - display.x_min : x1 - display.x_min + 1] = pixels[
            y0 - data.y_min : y1 - data.y_min + 1, x0 - data.x_min : x1 - data.x_min + 1
        ]
    return out
