"""A fake of DaVinci Resolve's scripting module: the surface ``../shared/HOSTS.md`` describes.

Faithful where the adapters depend on it, and checked against ``fusionscript-stubs``
(tests/test_hosts_stubs.py):

* ``scriptapp("Resolve")`` returns None when no Resolve is reachable (``_launch`` makes one);
* timeline markers are keyed by the offset from the timeline's start frame (86400 at
  01:00:00:00, 24 fps), ``recordFrame`` in ``AppendToTimeline`` is absolute;
* track indices are 1-based; ``endFrame`` is exclusive; an append that overlaps a clip
  on its track or names a missing track returns an item whose getters return None;
* ``ImportMedia`` of a frame pattern finds the files on disk (none: an empty list) and
  names the clip ``name.[1001-1048].exr`` as Resolve does;
* project settings are strings.
"""
from __future__ import annotations

import os
import re
from typing import Any

from _recording import Recorded, api

_app: "Resolve | None" = None


@api
def scriptapp(name: str) -> "Resolve | None":
    return _app if name == "Resolve" else None


def _launch(resolve: "Resolve | None") -> None:
    """Make ``resolve`` the running Resolve (None: Resolve not running / not reachable)."""
    global _app
    _app = resolve


class MediaPoolItem(Recorded):
    def __init__(self, properties: dict[str, str]) -> None:
        self._properties = dict(properties)

    def GetName(self) -> str:
        return self._properties.get("Clip Name", "")

    def GetClipProperty(self, propertyName: str | None = None) -> Any:
        if propertyName is None:
            return dict(self._properties)
        return self._properties.get(propertyName, "")

    def GetUniqueId(self) -> str:
        return str(id(self))


class TimelineItem(Recorded):
    def __init__(self, item: MediaPoolItem | None, start: int | None, duration: int | None,
                 source_start: int | None = 0) -> None:
        self._item = item
        self._start = start
        self._duration = duration
        self._source_start = source_start

    def GetName(self) -> str | None:
        return self._item.GetName() if self._item else None

    def GetStart(self, subframe_precision: bool = False) -> int | None:
        return self._start

    def GetEnd(self, subframe_precision: bool = False) -> int | None:
        # Resolve's end is the first frame after the clip.
        return None if self._start is None or self._duration is None else self._start + self._duration

    def GetDuration(self, subframe_precision: bool = False) -> int | None:
        return self._duration

    def GetLeftOffset(self, subframe_precision: bool = False) -> int | None:
        return self._source_start

    def GetSourceStartFrame(self) -> int | None:
        return self._source_start

    def GetSourceEndFrame(self) -> int | None:
        return None if self._source_start is None or self._duration is None else self._source_start + self._duration - 1

    def GetMediaPoolItem(self) -> MediaPoolItem | None:
        return self._item

    def GetMarkers(self) -> dict[float, dict[str, Any]]:
        return {}


class Timeline(Recorded):
    def __init__(self, name: str = "Timeline 1", start_frame: int = 86400, video_tracks: int = 1) -> None:
        self._name = name
        self._start_frame = start_frame
        self._tracks: list[list[TimelineItem]] = [[] for _ in range(video_tracks)]
        self._markers: dict[float, dict[str, Any]] = {}
        self._playhead = start_frame

    def GetName(self) -> str:
        return self._name

    def GetStartFrame(self) -> int:
        return self._start_frame

    def GetEndFrame(self) -> int:
        ends = [item.GetEnd() or 0 for track in self._tracks for item in track]
        return max(ends, default=self._start_frame)

    def GetTrackCount(self, trackType: str) -> int:
        return len(self._tracks) if trackType == "video" else 0

    def AddTrack(self, trackType: str, subTrackType: Any = None) -> bool:
        if trackType != "video":
            return False
        self._tracks.append([])
        return True

    def GetItemListInTrack(self, trackType: str, index: int) -> list[TimelineItem] | None:
        if trackType != "video" or not 1 <= index <= len(self._tracks):
            return None
        return list(self._tracks[index - 1])

    def GetMarkers(self) -> dict[float, dict[str, Any]]:
        return {offset: dict(marker) for offset, marker in self._markers.items()}

    def AddMarker(self, frameId: float, color: str, name: str, note: str, duration: float,
                  customData: str | None = None) -> bool:
        if frameId in self._markers:
            return False
        self._markers[frameId] = {"color": color, "duration": duration, "note": note, "name": name,
                                  "customData": customData or ""}
        return True

    def GetCurrentVideoItem(self) -> TimelineItem | None:
        for track in reversed(self._tracks):
            for item in track:
                start, end = item.GetStart(), item.GetEnd()
                if start is not None and end is not None and start <= self._playhead < end:
                    return item
        return None

    def GetCurrentTimecode(self) -> str:
        frames = self._playhead
        return f"{frames // 86400:02d}:{frames // 1440 % 60:02d}:{frames // 24 % 60:02d}:{frames % 24:02d}"

    def GetSetting(self, settingName: str | None = None) -> Any:
        return "24" if settingName == "timelineFrameRate" else ""

    def _place(self, track: int, item: TimelineItem) -> None:
        self._tracks[track - 1].append(item)


class Folder(Recorded):
    def __init__(self, name: str) -> None:
        self._name = name
        self._clips: list[MediaPoolItem] = []

    def GetName(self) -> str:
        return self._name

    def GetClipList(self) -> list[MediaPoolItem]:
        return list(self._clips)


def _files_of(pattern: str, first: int, last: int) -> list[str]:
    match = re.search(r"%0?(\d*)d", pattern)
    if not match:
        return [pattern] if os.path.isfile(pattern) else []
    digits = int(match.group(1) or 0)
    files = [pattern.replace(match.group(0), f"{frame:0{digits}d}", 1) for frame in range(first, last + 1)]
    return [f for f in files if os.path.isfile(f)]


class MediaPool(Recorded):
    def __init__(self, project: "Project") -> None:
        self._project = project
        self._root = Folder("Master")

    def GetRootFolder(self) -> Folder:
        return self._root

    def ImportMedia(self, items: list[Any]) -> list[MediaPoolItem]:
        imported: list[MediaPoolItem] = []
        for entry in items:
            if isinstance(entry, str):
                if not os.path.isfile(entry):
                    continue
                props = {"File Path": entry, "Clip Name": os.path.basename(entry), "Frames": "1"}
            else:
                pattern, first, last = entry["FilePath"], int(entry["StartIndex"]), int(entry["EndIndex"])
                found = _files_of(pattern, first, last)
                if len(found) != last - first + 1:
                    continue  # Resolve imports nothing for a sequence it cannot find
                match = re.search(r"%0?(\d*)d", pattern)
                digits = int(match.group(1) or 0) if match else 0
                shown = pattern.replace(match.group(0), f"[{first:0{digits}d}-{last:0{digits}d}]") if match else pattern
                props = {"File Path": shown, "Clip Name": os.path.basename(shown), "Start": str(first),
                         "End": str(last), "Frames": str(last - first + 1), "FPS": "24",
                         "Input Color Space": self._project._settings.get("colorSpaceInput", "")}
            item = MediaPoolItem(props)
            self._root._clips.append(item)
            imported.append(item)
        return imported

    def AppendToTimeline(self, clips: list[Any], *more: Any) -> list[TimelineItem]:
        timeline = self._project.GetCurrentTimeline()
        appended: list[TimelineItem] = []
        for info in clips:
            if not isinstance(info, dict):
                raise NotImplementedError("the fake appends clipInfo dicts only")
            item: MediaPoolItem = info["mediaPoolItem"]
            start, end = int(info["startFrame"]), int(info["endFrame"])  # end exclusive
            track = int(info.get("trackIndex", 1))
            record = int(info.get("recordFrame", timeline.GetEndFrame()))
            frames = int(item.GetClipProperty("Frames") or 0)
            broken = TimelineItem(None, None, None, None)
            if not 1 <= track <= timeline.GetTrackCount("video") or not 0 <= start < end <= frames:
                appended.append(broken)
                continue
            clash = any(other.GetStart() < record + (end - start) and record < other.GetEnd()
                        for other in timeline._tracks[track - 1])
            if clash:
                appended.append(broken)
                continue
            placed = TimelineItem(item, record, end - start, start)
            timeline._place(track, placed)
            appended.append(placed)
        return appended


class Project(Recorded):
    def __init__(self, name: str = "Retake test", settings: dict[str, str] | None = None) -> None:
        self._name = name
        self._settings = {"colorScienceMode": "davinciYRGBColorManagedv2", "isAutoColorManage": "0",
                          "colorSpaceInput": "Rec.709 Gamma 2.4", "colorSpaceTimeline": "DaVinci WG/Intermediate",
                          "colorSpaceOutput": "Rec.709 Gamma 2.4", "colorAcesIDT": "", "colorAcesODT": "",
                          "timelineFrameRate": "24"}
        self._settings.update(settings or {})
        self._pool = MediaPool(self)
        self._timeline: Timeline | None = None

    def GetName(self) -> str:
        return self._name

    def GetMediaPool(self) -> MediaPool:
        return self._pool

    def GetCurrentTimeline(self) -> Timeline | None:
        return self._timeline

    def GetSetting(self, settingName: str | None = None) -> Any:
        if settingName is None:
            return dict(self._settings)
        return self._settings.get(settingName, "")


class ProjectManager(Recorded):
    def __init__(self, project: Project | None) -> None:
        self._project = project

    def GetCurrentProject(self) -> Project | None:
        return self._project


class Resolve(Recorded):
    def __init__(self, project: Project | None, studio: bool = True) -> None:
        self._manager = ProjectManager(project)
        self._studio = studio

    def GetProjectManager(self) -> ProjectManager:
        return self._manager

    def GetProductName(self) -> str:
        return "DaVinci Resolve Studio" if self._studio else "DaVinci Resolve"

    def GetVersionString(self) -> str:
        return "20.2.0.0"


class _App:
    """The ``app`` object Resolve hands a Scripts-menu script."""

    def __init__(self, resolve: Resolve) -> None:
        self._resolve = resolve

    def GetResolve(self) -> Resolve:
        return self._resolve
