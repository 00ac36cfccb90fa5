"""Colour management: every conversion in Retake goes through OpenColorIO.

Inside the engine pixels are float32, scene-linear, in the config's
``scene_linear`` role (ACEScg in the studio config), unclamped: values above
1.0 and below 0.0 survive every conversion here (no clamping anywhere).

Which config, in order (``Colour.source`` says which one won):

1. the job's config (a file path or an ``ocio://`` URI) -> ``"job"``
2. ``$OCIO`` -> ``"$OCIO"``
3. the host's config (Nuke's or Resolve's, passed in by the plugin) -> ``"host"``
4. OpenColorIO's built-in ``ocio://studio-config-latest`` -> ``"built-in"``

A config that is named but broken is an ``InputError``: silently falling back
to another config would render in the wrong colours.

Building an OCIO processor is slow (milliseconds to tens of ms for the ACES 2
output transforms); applying one is fast. Processors are cached per
``Colour`` keyed by a description of the transform.

This module imports numpy and OpenColorIO only (no torch): it is imported by
light tools (writers, the CLI's ``--list-colorspaces``).
"""
from __future__ import annotations

import difflib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import PyOpenColorIO as ocio

from engine.errors import InputError
from engine.io.header import AP0, AP1, P3D65, REC709, REC2020, Chromaticities, ImageHeader

BUILTIN_CONFIG = "ocio://studio-config-latest"

# Display/view pairs Retake's SDR and HDR outputs use (studio config names).
SDR_DISPLAY = "Rec.1886 Rec.709 - Display"
SDR_VIEW = "ACES 2.0 - SDR 100 nits (Rec.709)"
HDR_DISPLAY = "Rec.2100-PQ - Display"
HDR_VIEW = "ACES 2.0 - HDR 1000 nits (Rec.2020)"

# Chromaticities that name a colour space of the studio config. A file whose
# chromaticities match one of these is taken to be scene-linear in it.
_KNOWN_PRIMARIES: tuple[tuple[Chromaticities, str], ...] = (
    (AP0, "ACES2065-1"),
    (AP1, "ACEScg"),
    (REC709, "Linear Rec.709 (sRGB)"),
    (REC2020, "Linear Rec.2020"),
    (P3D65, "Linear P3-D65"),
)

# Bradford cone response matrix (Lam 1985), used to chromatically adapt a file's
# white to the config's reference white. This only *builds* a matrix: OCIO's
# MatrixTransform applies it to pixels.
_BRADFORD = np.array(
    [
        [0.8951, 0.2664, -0.1614],
        [-0.7502, 1.7135, 0.0367],
        [0.0389, -0.0685, 1.0296],
    ],
    dtype=np.float64,
)
_D65_WHITE = (0.3127, 0.3290)

_FILE_FORMATS_EXR = {"openexr", "exr"}
_FILE_FORMATS_INTEGER_IMAGES = {"png", "tiff", "tif", "jpeg", "jpg", "targa", "tga", "bmp"}
_FILE_FORMATS_MOVIES = {"mov", "mp4", "m4v", "mxf", "mkv", "avi", "webm", "movie", "quicktime", "ffmpeg"}
_FLOAT_PIXEL_TYPES = {"half", "float", "double"}

_PROCESSOR_CACHE_SIZE = 128


def _xy_to_xyz(xy: tuple[float, float]) -> np.ndarray:
    # Unnormalised (x, y, z): avoids dividing by y, which is 0 for XYZ's red and
    # blue "primaries"; the per-primary scale is solved for below anyway.
    x, y = xy
    return np.array([x, y, 1.0 - x - y], dtype=np.float64)


def _white_xyz(xy: tuple[float, float]) -> np.ndarray:
    x, y = xy
    return np.array([x / y, 1.0, (1.0 - x - y) / y], dtype=np.float64)


def rgb_to_xyz_matrix(chroma: Chromaticities) -> np.ndarray:
    """3x3 matrix taking linear RGB with these primaries to CIE XYZ (Y of white = 1)."""
    primaries = np.stack([_xy_to_xyz(chroma.red), _xy_to_xyz(chroma.green), _xy_to_xyz(chroma.blue)], axis=1)
    scale = np.linalg.solve(primaries, _white_xyz(chroma.white))
    return primaries * scale[np.newaxis, :]


def bradford_matrix(src_white: tuple[float, float], dst_white: tuple[float, float]) -> np.ndarray:
    """3x3 von Kries/Bradford matrix adapting XYZ from ``src_white`` to ``dst_white``."""
    src_cone = _BRADFORD @ _white_xyz(src_white)
    dst_cone = _BRADFORD @ _white_xyz(dst_white)
    return np.linalg.inv(_BRADFORD) @ np.diag(dst_cone / src_cone) @ _BRADFORD


def _matrix44(m33: np.ndarray) -> list[float]:
    m = np.eye(4, dtype=np.float64)
    m[:3, :3] = m33
    return [float(v) for v in m.ravel()]


def _chroma_key(chroma: Chromaticities) -> tuple[float, ...]:
    return tuple(round(v, 6) for v in (*chroma.red, *chroma.green, *chroma.blue, *chroma.white))


class Colour:
    """One resolved OCIO config plus cached processors to and from the working space.

    ``config`` is the PyOpenColorIO.Config; ``config_name`` its name (or the
    path it came from); ``config_path`` what was loaded (path or ``ocio://``
    URI); ``source`` one of ``"job"``, ``"$OCIO"``, ``"host"``, ``"built-in"``;
    ``working_space`` the ``scene_linear`` role's colour space (ACEScg).

    ``display_inverse_view`` decides how a display-referred source (a Rec.709
    movie, ``"Rec.1886 Rec.709 - Display"``) becomes scene-linear:

    * ``None`` (default): OCIO's own display-to-scene route, through the
      config's default view transform. In the studio config that is
      "Un-tone-mapped", a purely colorimetric conversion (the same result as
      inverting the "Video (colorimetric)" view): display 1.0 -> scene ~1.0,
      values stay bounded, which keeps resampling and blending of video plates
      free of the halos that huge inverted highlights would cause. An SDR
      output through the ACES 2.0 view will then look tone-mapped (a little
      darker/softer) compared with the source video.
    * a view name, e.g. ``"ACES 2.0 - SDR 100 nits (Rec.709)"``: inverts that
      view (DisplayViewTransform, inverse direction), so the same view on
      output gives the source video back exactly; display 1.0 becomes scene
      ~128 with ACES 2.0.
    """

    def __init__(
        self,
        config: str | None = None,
        host_config: str | None = None,
        *,
        display_inverse_view: str | None = None,
    ) -> None:
        self.config, self.config_path, self.source = _load_config(config, host_config)
        self.config_name: str = self.config.getName() or self.config_path
        self.working_space: str = self._role_space("scene_linear", fallback="ACEScg")
        self.display_inverse_view = display_inverse_view
        self._processors: OrderedDict[tuple, ocio.CPUProcessor] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Colour(config={self.config_name!r}, source={self.source!r}, working={self.working_space!r})"

    # -- names ------------------------------------------------------------

    def _role_space(self, role: str, fallback: str | None = None) -> str:
        space = self.config.getColorSpace(role)
        if space is not None:
            return space.getName()
        if fallback is not None and self.config.getColorSpace(fallback) is not None:
            return self.config.getColorSpace(fallback).getName()
        raise InputError(
            f"the OCIO config {self.config_name!r} has no {role!r} role",
            path=self.config_path,
            hint=f"add 'roles: {{{role}: <colour space>}}' to the config or use {BUILTIN_CONFIG}",
        )

    def colorspace_names(self) -> list[str]:
        """All colour-space names of the config, in config order."""
        return [cs.getName() for cs in self.config.getColorSpaces()]

    def _known_spellings(self) -> dict[str, str]:
        """Every accepted spelling (name, alias, role) -> the canonical name."""
        spellings: dict[str, str] = {}
        for cs in self.config.getColorSpaces():
            spellings[cs.getName()] = cs.getName()
            for alias in cs.getAliases():
                spellings[alias] = cs.getName()
        for role, space in self.config.getRoles():
            spellings[role] = space
        return spellings

    def resolve_colorspace(self, name: str) -> str:
        """The canonical colour-space name for ``name`` (a name, an alias or a role).

        Unknown names raise ``InputError`` listing the five nearest known ones.
        """
        space = self.config.getColorSpace(name) if name else None
        if space is not None:
            return space.getName()
        spellings = self._known_spellings()
        nearest = _nearest(name or "", spellings.keys())
        shown = [n if spellings[n] == n else f"{n} (= {spellings[n]})" for n in nearest]
        raise InputError(
            f"unknown colour space {name!r} in OCIO config {self.config_name!r}",
            path=self.config_path,
            hint="nearest known: " + "; ".join(shown),
        )

    def is_display_referred(self, name: str) -> bool:
        """True when ``name`` is a display-referred colour space (e.g. a video encoding)."""
        space = self.config.getColorSpace(self.resolve_colorspace(name))
        return space.getReferenceSpaceType() == ocio.REFERENCE_SPACE_DISPLAY

    def _check_display_view(self, display: str, view: str) -> None:
        displays = list(self.config.getDisplays())
        if display not in displays:
            raise InputError(
                f"unknown display {display!r} in OCIO config {self.config_name!r}",
                path=self.config_path,
                hint="nearest known: " + "; ".join(_nearest(display, displays)),
            )
        views = list(self.config.getViews(display))
        if view not in views:
            raise InputError(
                f"unknown view {view!r} for display {display!r}",
                path=self.config_path,
                hint="views of that display: " + "; ".join(views),
            )

    # -- processors -------------------------------------------------------

    def _processor(self, key: tuple, build: Callable[[], ocio.Transform]) -> ocio.CPUProcessor:
        with self._lock:
            cpu = self._processors.get(key)
            if cpu is not None:
                self._processors.move_to_end(key)
                return cpu
        # Build outside the lock: it can take a while and another thread may
        # want a different processor meanwhile. A rare double build is harmless.
        # LOSSLESS: the default optimisation uses fast approximations of
        # pow/log/exp (errors ~4e-5, visible after a few round trips);
        # lossless costs ~30% more on an sRGB curve and keeps 1e-6.
        cpu = self.config.getProcessor(build()).getOptimizedCPUProcessor(ocio.OPTIMIZATION_LOSSLESS)
        with self._lock:
            self._processors[key] = cpu
            # Bounded: CDL sliders produce a new key for every value.
            while len(self._processors) > _PROCESSOR_CACHE_SIZE:
                self._processors.popitem(last=False)
        return cpu

    def _named_transform(self, src: str, dst: str) -> tuple[tuple, Callable[[], ocio.Transform]]:
        """Transform between two named spaces, honouring ``display_inverse_view``."""
        view = self.display_inverse_view
        displays = set(self.config.getDisplays())
        src_display = view is not None and self.is_display_referred(src) and src in displays
        dst_display = view is not None and self.is_display_referred(dst) and dst in displays
        if src_display and not self.is_display_referred(dst) and view in self.config.getViews(src):
            return ("dv", dst, src, view, "inverse"), lambda: ocio.DisplayViewTransform(
                src=dst, display=src, view=view, direction=ocio.TRANSFORM_DIR_INVERSE
            )
        if dst_display and not self.is_display_referred(src) and view in self.config.getViews(dst):
            return ("dv", src, dst, view, "forward"), lambda: ocio.DisplayViewTransform(
                src=src, display=dst, view=view
            )
        return ("cs", src, dst), lambda: ocio.ColorSpaceTransform(src=src, dst=dst)

    def _chroma_name(self, chroma: Chromaticities) -> str | None:
        for known, name in _KNOWN_PRIMARIES:
            if chroma.close_to(known) and self.config.getColorSpace(name) is not None:
                return self.config.getColorSpace(name).getName()
        return None

    def _chroma_transform(self, chroma: Chromaticities, to_working: bool) -> tuple[tuple, Callable[[], ocio.Transform]]:
        """Linear RGB with arbitrary primaries <-> working space.

        Route: a MatrixTransform (RGB -> XYZ from the chromaticities, Bradford
        adaptation from the file's white to the reference white, XYZ -> the
        reference RGB) into the ``aces_interchange`` role (ACES2065-1, white
        ACES D60 ~(0.32168, 0.33767)), then OCIO's ColorSpaceTransform from
        that role to the working space. Configs without that role use the
        ``cie_xyz_d65_interchange`` role instead (XYZ adapted to D65).
        """
        if self.config.getColorSpace("aces_interchange") is not None:
            ref_space = self._role_space("aces_interchange")
            m = np.linalg.inv(rgb_to_xyz_matrix(AP0)) @ bradford_matrix(chroma.white, AP0.white) @ rgb_to_xyz_matrix(chroma)
        elif self.config.getColorSpace("cie_xyz_d65_interchange") is not None:
            ref_space = self._role_space("cie_xyz_d65_interchange")
            m = bradford_matrix(chroma.white, _D65_WHITE) @ rgb_to_xyz_matrix(chroma)
        else:
            raise InputError(
                f"cannot convert from chromaticities {chroma} with OCIO config {self.config_name!r}",
                path=self.config_path,
                hint="the config needs an 'aces_interchange' or 'cie_xyz_d65_interchange' role",
            )
        matrix = _matrix44(m)
        working = self.working_space

        def build() -> ocio.Transform:
            group = ocio.GroupTransform()
            if to_working:
                group.appendTransform(ocio.MatrixTransform(matrix=matrix))
                group.appendTransform(ocio.ColorSpaceTransform(src=ref_space, dst=working))
            else:
                group.appendTransform(ocio.ColorSpaceTransform(src=working, dst=ref_space))
                group.appendTransform(ocio.MatrixTransform(matrix=matrix, direction=ocio.TRANSFORM_DIR_INVERSE))
            return group

        return ("chroma", _chroma_key(chroma), to_working, ref_space, working), build

    def _space_transform(self, space: str | Chromaticities, to_working: bool) -> tuple[tuple, Callable[[], ocio.Transform]]:
        if isinstance(space, Chromaticities):
            name = self._chroma_name(space)
            if name is None:
                return self._chroma_transform(space, to_working)
        else:
            name = self.resolve_colorspace(space)
        if to_working:
            return self._named_transform(name, self.working_space)
        return self._named_transform(self.working_space, name)

    # -- pixels -----------------------------------------------------------

    def to_working(self, pixels: np.ndarray, source: str | Chromaticities) -> np.ndarray:
        """``source`` -> working space.

        pixels: (H, W, 3) or (H, W, 4) float32 in ``source`` (a colour-space
        name/alias/role, or the linear primaries of a file). Returns a new
        (H, W, 3|4) float32 array, scene-linear working space (ACEScg);
        alpha is copied untouched; nothing is clamped.
        """
        key, build = self._space_transform(source, to_working=True)
        return _apply(self._processor(key, build), pixels)

    def from_working(self, pixels: np.ndarray, dest: str | Chromaticities) -> np.ndarray:
        """Working space -> ``dest``.

        pixels: (H, W, 3|4) float32 scene-linear working space (ACEScg).
        Returns a new (H, W, 3|4) float32 array in ``dest``; alpha untouched;
        nothing clamped.
        """
        key, build = self._space_transform(dest, to_working=False)
        return _apply(self._processor(key, build), pixels)

    def convert(self, pixels: np.ndarray, src: str, dst: str) -> np.ndarray:
        """Named space -> named space. (H, W, 3|4) float32 in ``src`` -> same shape in ``dst``."""
        key, build = self._named_transform(self.resolve_colorspace(src), self.resolve_colorspace(dst))
        return _apply(self._processor(key, build), pixels)

    def to_display(self, pixels_working: np.ndarray, display: str = SDR_DISPLAY, view: str = SDR_VIEW) -> np.ndarray:
        """Working space -> display-encoded values through a display/view.

        pixels_working: (H, W, 3|4) float32 scene-linear ACEScg. Returns
        (H, W, 3|4) float32 display code values (nominally 0..1, e.g. BT.1886
        Rec.709 for SDR, PQ Rec.2020 for HDR), not clamped; alpha untouched.
        """
        self._check_display_view(display, view)
        working = self.working_space
        key = ("display", working, display, view)
        return _apply(
            self._processor(key, lambda: ocio.DisplayViewTransform(src=working, display=display, view=view)),
            pixels_working,
        )

    def cdl(
        self,
        pixels_working: np.ndarray,
        slope: Sequence[float] = (1.0, 1.0, 1.0),
        offset: Sequence[float] = (0.0, 0.0, 0.0),
        power: Sequence[float] = (1.0, 1.0, 1.0),
        saturation: float = 1.0,
        *,
        grading_space: str | None = None,
    ) -> np.ndarray:
        """ASC CDL graded in ``grading_space`` (default: the ``color_timing`` role, ACEScct).

        pixels_working: (H, W, 3|4) float32 scene-linear ACEScg; returns the
        same shape, ACEScg. The CDL runs in OCIO's no-clamp style: the ASC
        style would clip to 0..1 in ACEScct and destroy HDR highlights.
        """
        space = self.resolve_colorspace(grading_space) if grading_space else self._role_space("color_timing", "ACEScct")
        values = (tuple(map(float, slope)), tuple(map(float, offset)), tuple(map(float, power)), float(saturation))
        working = self.working_space

        def build() -> ocio.Transform:
            cdl = ocio.CDLTransform(slope=list(values[0]), offset=list(values[1]), power=list(values[2]), sat=values[3])
            cdl.setStyle(ocio.CDL_NO_CLAMP)
            return ocio.GroupTransform(
                [
                    ocio.ColorSpaceTransform(src=working, dst=space),
                    cdl,
                    ocio.ColorSpaceTransform(src=space, dst=working),
                ]
            )

        return _apply(self._processor(("cdl", working, space, values), build), pixels_working)

    def look(self, pixels_working: np.ndarray, look_name: str) -> np.ndarray:
        """Apply a config look (LookTransform, working -> working).

        pixels_working: (H, W, 3|4) float32 scene-linear ACEScg; returns the
        same shape, ACEScg. An unknown look raises ``InputError``.
        """
        looks = list(self.config.getLookNames())
        if look_name not in looks:
            raise InputError(
                f"unknown look {look_name!r} in OCIO config {self.config_name!r}",
                path=self.config_path,
                hint="known looks: " + ("; ".join(_nearest(look_name, looks)) or "none"),
            )
        working = self.working_space
        return _apply(
            self._processor(("look", working, look_name), lambda: ocio.LookTransform(src=working, dst=working, looks=look_name)),
            pixels_working,
        )

    # -- guessing ---------------------------------------------------------

    def colorspace_for_header(self, header: ImageHeader) -> str | Chromaticities:
        """The colour space to assume for a file when the user named none.

        In order: an ACES container -> "ACES2065-1"; chromaticities on a
        float (linear) file -> those primaries; the file's own hint
        (``colorspace_hint``); an EXR without chromaticities -> "Linear
        Rec.709 (sRGB)" (OpenEXR's default primaries); a float TIFF -> the
        same; 8/16-bit PNG/TIFF/JPEG -> "sRGB Encoded Rec.709 (sRGB)"; DPX ->
        "sRGB Encoded Rec.709 (sRGB)" too, but DPX is usually camera log
        (Cineon, ARRI LogC, ...) so the user should set it explicitly; movies
        -> "Rec.1886 Rec.709 - Display" (a display-referred space: see
        ``display_inverse_view`` for how it reaches scene-linear).
        """
        fmt = (header.file_format or "").lower()
        is_float = (header.pixel_type or "").lower() in _FLOAT_PIXEL_TYPES
        if header.aces_container:
            return "ACES2065-1"
        # Chromaticities only say "linear with these primaries" for float data;
        # on an 8/16-bit PNG/TIFF they describe an encoded image.
        if header.chromaticities is not None and (fmt in _FILE_FORMATS_EXR or is_float):
            return header.chromaticities
        if header.colorspace_hint:
            return header.colorspace_hint
        if fmt in _FILE_FORMATS_EXR or (is_float and fmt not in _FILE_FORMATS_MOVIES):
            return "Linear Rec.709 (sRGB)"
        if fmt in _FILE_FORMATS_MOVIES or any(m in fmt for m in ("movie", "ffmpeg", "quicktime")):
            return SDR_DISPLAY
        return "sRGB Encoded Rec.709 (sRGB)"


def _apply(cpu: ocio.CPUProcessor, pixels: np.ndarray) -> np.ndarray:
    """Run ``cpu`` on a copy of pixels (H, W, 3|4); alpha restored from the input."""
    if pixels.ndim != 3 or pixels.shape[-1] not in (3, 4):
        raise ValueError(f"expected (H, W, 3) or (H, W, 4) pixels, got shape {pixels.shape}")
    out = np.array(pixels, dtype=np.float32, order="C", copy=True)
    height, width, channels = out.shape
    if out.size == 0:
        return out
    # Through a PackedImageDesc on the array's own memory rather than applyRGB: the same
    # values, and PyOpenColorIO 2.6's applyRGB took 34 ms a 1080p frame for a matrix (the
    # plate's ACES2065-1 <-> ACEScg) where this takes 7.5, 63 against 23 for ACEScct
    # (bench/io.py, best of 5). Every frame is converted on its way in and on its way out.
    cpu.apply(ocio.PackedImageDesc(out, width, height, channels))
    if channels == 4:
        # Alpha is coverage, not colour: guarantee it is bit-identical.
        out[..., 3] = pixels[..., 3]
    return out


def _nearest(name: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """The ``n`` candidates closest to ``name`` (case-insensitive, difflib ratio)."""
    by_lower: dict[str, str] = {}
    for c in candidates:
        by_lower.setdefault(c.lower(), c)
    matches = difflib.get_close_matches(name.lower(), list(by_lower), n=n, cutoff=0.0)
    return [by_lower[m] for m in matches]


def _load_config(config: str | None, host_config: str | None) -> tuple[ocio.Config, str, str]:
    """(config, what was loaded, source) following the job -> $OCIO -> host -> built-in order."""
    env = os.environ.get("OCIO") or None
    for value, source in ((config, "job"), (env, "$OCIO"), (host_config, "host"), (BUILTIN_CONFIG, "built-in")):
        if not value:
            continue
        is_uri = value.startswith("ocio://")
        if not is_uri and not os.path.isfile(value):
            raise InputError(
                f"OCIO config not found (from the {source})",
                path=value,
                hint=f"fix the path, or leave it unset to use {BUILTIN_CONFIG}",
            )
        try:
            return ocio.Config.CreateFromFile(value), value, source
        except ocio.Exception as exc:
            raise InputError(
                f"cannot load OCIO config (from the {source}): {exc}",
                path=value,
                hint=f"check the file, or use {BUILTIN_CONFIG}",
            ) from exc
    raise AssertionError("unreachable: the built-in config is always tried")
