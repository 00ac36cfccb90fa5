"""DaVinci Resolve adapter: the clip under the playhead, the timeline's markers, the project's
colour management; the result imported and laid on a new video track exactly over the source.

Resolve never hands over pixels: the engine reads the clip's files from disk. Marker keys
are offsets from the timeline's start frame (often 86400); ``recordFrame`` is absolute;
track indices are 1-based; ``AppendToTimeline``'s ``endFrame`` is exclusive.

Resolve's colour management is its own (DaVinci YRGB, colour-managed YRGB, ACEScc/cct),
not OCIO: ``ocio_colorspace`` maps the input colour-space names Retake knows to OCIO's
studio config and says so, by name, when one has no equivalent there.

Standard library only at import (this runs in the Python Resolve uses).
"""
from __future__ import annotations

import os
import re
from typing import Any

from plugin.hosts.base import ColourContext, Host, HostError, KeyframeMark, OutputPlate, PlateRef

# Resolve's input colour-space names (Color Management and the clip's "Input Color Space")
# -> OCIO studio-config names. A name missing here is reported, never guessed.
RESOLVE_SPACES: dict[str, str] = {
    "ACEScg": "ACEScg",
    "ACEScct": "ACEScct",
    "ACEScc": "ACEScc",
    "ACES2065-1": "ACES2065-1",
    "Linear": "Linear Rec.709 (sRGB)",
    "Rec.709": "Camera Rec.709",
    "Rec.709 Gamma 2.4": "Gamma 2.4 Encoded Rec.709",
    "Rec.709 Gamma 2.2": "Gamma 2.2 Encoded Rec.709",
    "sRGB": "sRGB Encoded Rec.709 (sRGB)",
    "Rec.2020 Linear": "Linear Rec.2020",
    "P3-D65 Linear": "Linear P3-D65",
    "Rec.2100 ST2084": "Rec.2100-PQ - Display",
    "Rec.2100 HLG": "Rec.2100-HLG - Display",
    "DaVinci WG/Intermediate": "DaVinci Intermediate WideGamut",
    "DaVinci Wide Gamut/DaVinci Intermediate": "DaVinci Intermediate WideGamut",
    "ARRI LogC3": "ARRI LogC3 (EI800)",
    "ARRI Wide Gamut 3/LogC3": "ARRI LogC3 (EI800)",
    "ARRI LogC4": "ARRI LogC4",
    "ARRI Wide Gamut 4/LogC4": "ARRI LogC4",
    "S-Gamut3/S-Log3": "S-Log3 S-Gamut3",
    "S-Gamut3.Cine/S-Log3": "S-Log3 S-Gamut3.Cine",
    "Panasonic V-Gamut/V-Log": "V-Log V-Gamut",
    "RED Wide Gamut RGB/Log3G10": "Log3G10 REDWideGamutRGB",
    "Blackmagic Design Wide Gamut Gen 5/Film Gen 5": "BMDFilm WideGamut Gen5",
    "Canon Cinema Gamut/Canon Log 2": "CanonLog2 CinemaGamut D55",
    "Canon Cinema Gamut/Canon Log 3": "CanonLog3 CinemaGamut D55",
    "Apple Log": "Apple Log",
    "DJI D-Gamut/D-Log": "D-Log D-Gamut",
}
# ACES projects name an Input Device Transform instead (colorAcesIDT).
RESOLVE_ACES_IDTS: dict[str, str] = {
    "No Input Transform": "ACES2065-1",
    "ACEScg": "ACEScg",
    "ACEScct": "ACEScct",
    "ACEScc": "ACEScc",
    "sRGB (Linear) - CSC": "Linear Rec.709 (sRGB)",
    "Rec.709": "Camera Rec.709",
    "ARRI LogC3 (EI800)": "ARRI LogC3 (EI800)",
    "ARRI LogC4": "ARRI LogC4",
    "Sony SLog3 SGamut3.Cine": "S-Log3 S-Gamut3.Cine",
    "Sony SLog3 SGamut3": "S-Log3 S-Gamut3",
    "Panasonic V-Log V-Gamut": "V-Log V-Gamut",
    "RED Log3G10 RWG": "Log3G10 REDWideGamutRGB",
    "Blackmagic Film Generation 5": "BMDFilm WideGamut Gen5",
    "Apple Log": "Apple Log",
}

_RANGE = re.compile(r"\[(\d+)-(\d+)\]")

SCRIPT_API_HINT = {
    "linux": ("/opt/resolve/Developer/Scripting", "/opt/resolve/libs/Fusion/fusionscript.so"),
    "darwin": ("/Library/Application Support/Blackmagic Design/DaVinci Resolve/Developer/Scripting",
               "/Applications/DaVinci Resolve/DaVinci Resolve.app/Contents/Libraries/Fusion/fusionscript.so"),
    "win32": (r"%PROGRAMDATA%\Blackmagic Design\DaVinci Resolve\Support\Developer\Scripting",
              r"C:\Program Files\Blackmagic Design\DaVinci Resolve\fusionscript.dll"),
}


def ocio_colorspace(settings: dict[str, str], clip_space: str) -> tuple[str | None, tuple[str, ...]]:
    """(OCIO colour space of the clip or None, notes) from the project's colour settings.

    None means "let the engine read it from the file" and the notes say why: the project
    is not colour managed, or Resolve's name has no OCIO equivalent Retake knows.
    """
    mode = settings.get("colorScienceMode", "")
    clip_space = (clip_space or "").strip()
    if mode in ("acescc", "acescct"):
        idt = clip_space if clip_space and clip_space != "Project" else settings.get("colorAcesIDT", "")
        idt = idt or "No Input Transform"
        if idt in RESOLVE_ACES_IDTS:
            return RESOLVE_ACES_IDTS[idt], (f"Resolve ACES input transform {idt!r} read as OCIO {RESOLVE_ACES_IDTS[idt]!r}",)
        return None, (f"Resolve's ACES input transform {idt!r} has no OCIO equivalent Retake knows: the plate is read "
                      "as its file says; set the plate's colour space in the panel if that is wrong",)
    if mode.startswith("davinciYRGBColorManaged"):
        name = clip_space if clip_space and clip_space != "Project" else settings.get("colorSpaceInput", "")
        if name in RESOLVE_SPACES:
            return RESOLVE_SPACES[name], (f"Resolve input colour space {name!r} read as OCIO {RESOLVE_SPACES[name]!r}",)
        return None, (f"Resolve's input colour space {name!r} has no OCIO equivalent Retake knows: the plate is read "
                      "as its file says; set the plate's colour space in the panel if that is wrong",)
    if clip_space in RESOLVE_SPACES:
        return RESOLVE_SPACES[clip_space], (f"clip input colour space {clip_space!r} read as OCIO "
                                            f"{RESOLVE_SPACES[clip_space]!r}",)
    return None, (f"the project is not colour managed ({mode or 'DaVinci YRGB'}): Resolve assigns no input colour "
                  "space, so the plate is read as its file says",)


def sequence_range(file_path: str) -> tuple[str, int, int] | None:
    """Resolve's ``/x/plate.[1001-1048].exr`` -> (``/x/plate.%04d.exr``, 1001, 1048); None for a movie."""
    match = _RANGE.search(file_path)
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    pattern = file_path[:match.start()] + f"%0{len(first)}d" + file_path[match.end():]
    return pattern, int(first), int(last)


def connect(app: Any = None) -> Any:
    """The running Resolve: from the ``app`` a Scripts-menu script gets, else ``DaVinciResolveScript``."""
    if app is not None:
        return app.GetResolve()
    try:
        import DaVinciResolveScript as dvr  # Resolve's module, on PYTHONPATH via RESOLVE_SCRIPT_API/Modules
    except ImportError:
        import sys

        api, lib = SCRIPT_API_HINT.get(sys.platform, SCRIPT_API_HINT["linux"])
        raise HostError("cannot import DaVinciResolveScript (Resolve's scripting module)",
                        hint=f"set RESOLVE_SCRIPT_API={api}, RESOLVE_SCRIPT_LIB={lib} and add "
                             f"{api}/Modules to PYTHONPATH, or run Retake from Workspace > Scripts") from None
    resolve = dvr.scriptapp("Resolve")
    if resolve is None:
        raise HostError("DaVinci Resolve is not reachable",
                        hint="start Resolve Studio (scripting needs the Studio version) and set Preferences > "
                             "System > General > External scripting using to Local, or run Retake from "
                             "Workspace > Scripts")
    return resolve


class ResolveHost(Host):
    """The current project and timeline of a running Resolve (connected on first use)."""

    name = "Resolve"

    def __init__(self, app: Any = None, resolve: Any = None) -> None:
        self._app = app
        self._resolve = resolve
        # The source clip as it was when the plate was read: the playhead may move during a render.
        self._source: tuple[Any, int, int] | None = None
        self.notes: list[str] = []

    def resolve(self) -> Any:
        if self._resolve is None:
            self._resolve = connect(self._app)
        return self._resolve

    def _project(self) -> Any:
        project = self.resolve().GetProjectManager().GetCurrentProject()
        if project is None:
            raise HostError("no project is open in Resolve", hint="open the project with the shot")
        return project

    def _timeline(self) -> Any:
        timeline = self._project().GetCurrentTimeline()
        if timeline is None:
            raise HostError("the project has no current timeline", hint="open the timeline with the shot")
        return timeline

    def _settings(self) -> dict[str, str]:
        project = self._project()
        return {name: str(project.GetSetting(name) or "") for name in (
            "colorScienceMode", "isAutoColorManage", "colorSpaceInput", "colorSpaceTimeline", "colorAcesIDT")}

    def plate(self) -> PlateRef:
        timeline = self._timeline()
        item = timeline.GetCurrentVideoItem()
        if item is None:
            raise HostError("there is no video clip under the playhead", hint="move the playhead over the shot")
        media = item.GetMediaPoolItem()
        if media is None:
            raise HostError(f"the clip {item.GetName()!r} under the playhead has no media",
                            hint="use a clip of an image sequence or movie, not a generator or compound clip")
        file_path = str(media.GetClipProperty("File Path") or "")
        if not file_path:
            raise HostError(f"the clip {item.GetName()!r} has no file path", hint="relink its media")
        record, duration, offset = item.GetStart(False), item.GetDuration(False), item.GetLeftOffset(False)
        if record is None or duration is None or offset is None:
            raise HostError(f"Resolve did not give the position of {item.GetName()!r}", hint="select the clip again")
        parsed = sequence_range(file_path)
        if parsed is not None:
            path, media_first, _media_last = parsed
        else:
            path, media_first = file_path, int(str(media.GetClipProperty("Start") or "0") or 0)
            if media_first == 0:
                media_first = 1001  # the engine numbers a movie's frames from 1001
        first = media_first + int(offset)
        colorspace, notes = ocio_colorspace(self._settings(), str(media.GetClipProperty("Input Color Space") or ""))
        self.notes = list(notes)
        self._source = (item, int(record), int(duration))
        size = str(media.GetClipProperty("Resolution") or "")
        width, height = (int(v) for v in size.split("x")) if re.fullmatch(r"\d+x\d+", size) else (None, None)
        fps = str(media.GetClipProperty("FPS") or "") or None
        return PlateRef(path=path, first=first, last=first + int(duration) - 1, colorspace=colorspace,
                        label=str(item.GetName()), width=width, height=height, fps=fps)

    def keyframes(self) -> list[KeyframeMark]:
        """Timeline markers over the clip: a marker's note (else its name) is the keyframe's prompt."""
        plate = self.plate()
        assert self._source is not None
        _item, record, duration = self._source
        timeline = self._timeline()
        start = int(timeline.GetStartFrame())
        marks: list[KeyframeMark] = []
        outside = 0
        for offset, marker in sorted((timeline.GetMarkers() or {}).items()):
            frame_on_timeline = start + int(offset)
            if not record <= frame_on_timeline < record + duration:
                outside += 1
                continue
            text = str(marker.get("note") or marker.get("name") or "").strip() or None
            marks.append(KeyframeMark(plate.first + frame_on_timeline - record, text))
        if outside:
            self.notes.append(f"{outside} timeline marker(s) outside the clip were left out")
        return marks

    def colour(self) -> ColourContext:
        # Resolve has no OCIO config: the engine uses its own order ($OCIO, then OCIO's studio config).
        return ColourContext(None, tuple(self.notes))

    def current_frame(self) -> int | None:
        return None

    def put_back(self, output: OutputPlate) -> str:
        """Import the EXR sequence and lay it on a new video track over the source, same length."""
        if self._source is None:
            self.plate()
        assert self._source is not None
        _item, record, duration = self._source
        frames = output.last - output.first + 1
        if frames != duration:
            raise HostError(f"the result has {frames} frames but the clip is {duration} long",
                            hint="render the whole clip")
        pool = self._project().GetMediaPool()
        if any(token in output.path for token in ("#", "%", "@")):
            pattern = re.sub(r"#+", lambda m: f"%0{len(m.group(0))}d", output.path)
            imported = pool.ImportMedia([{"FilePath": pattern, "StartIndex": output.first, "EndIndex": output.last}])
        else:  # an SDR/HDR movie: one file
            pattern = output.path
            imported = pool.ImportMedia([pattern])
        if not imported or isinstance(imported[0], str):
            raise HostError(f"Resolve imported nothing from {pattern} ({output.first}-{output.last})",
                            hint="check that the frames exist and that Resolve can read that folder")
        clip = imported[0]
        timeline = self._timeline()
        if not timeline.AddTrack("video"):
            raise HostError("Resolve did not add a video track", hint="unlock the timeline and try again")
        track = int(timeline.GetTrackCount("video"))
        placed = pool.AppendToTimeline([{"mediaPoolItem": clip, "startFrame": 0, "endFrame": frames,
                                         "mediaType": 1, "trackIndex": track, "recordFrame": record}])
        item = placed[0] if placed else None
        start = item.GetStart(False) if item is not None else None
        length = item.GetDuration(False) if item is not None else None
        if start is None or length is None or int(start) != record or int(length) != duration:
            raise HostError(f"Resolve did not place {clip.GetName()} on video track {track} at frame {record} "
                            f"(got start {start}, duration {length})",
                            hint="the clip is in the media pool: drag it onto the new track by hand")
        return f"imported {clip.GetName()} and placed it on video track {track} at frame {record} ({duration} frames)"

    def default_output(self, plate: PlateRef) -> str:
        directory, name = os.path.split(plate.path)
        stem = re.split(r"[.\[%#]", name)[0] or "plate"
        return os.path.join(directory, "retake", f"{stem}_retake.####.exr")


def open_panel(app: Any = None) -> Any:
    """The Scripts-menu entry: the Retake panel on this Resolve.

    With PySide6 in the Python Resolve uses, the panel opens in Resolve's process (and is
    returned). Without it, ``retake panel --host resolve`` opens it from Retake's own
    environment, which reaches Resolve through its scripting API; that process is returned.
    """
    try:
        from PySide6.QtWidgets import QApplication
    except ImportError:
        import subprocess

        from plugin.engine_process import find_retake

        return subprocess.Popen(find_retake() + ["panel", "--host", "resolve"])
    from plugin.panel import RetakePanel

    qt_app = QApplication.instance()
    owns_loop = qt_app is None
    if qt_app is None:
        qt_app = QApplication([])
    panel = RetakePanel(ResolveHost(app))
    panel.resize(1180, 760)
    panel.load_from_host()
    panel.show()
    if owns_loop:  # inside Resolve without a Qt loop of its own: this script keeps the window open
        qt_app.exec()
    return panel
