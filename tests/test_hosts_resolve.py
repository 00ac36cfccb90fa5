"""Resolve round trip on the fake ``DaVinciResolveScript``, through the shared panel and the real engine."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.scenes import use_fakes, write_acescg_plate, write_painted_keys
from tests.fakes.scenes import no_engine_left_behind  # noqa: F401 - autouse: kills engines a failed test left
from tests.fakes.screens import dispose, qt_app, screenshot, wait_for

use_fakes()
import DaVinciResolveScript as dvr  # noqa: E402 - the fake, from tests/fakes

from plugin.hosts import resolve as resolve_host  # noqa: E402

TIMELINE_START = 86400  # 01:00:00:00 at 24 fps
RECORD = TIMELINE_START + 24  # the clip starts one second into the timeline
KEY_FRAMES = (1001, 1021, 1041)


@pytest.fixture
def session(tmp_path: Path) -> dict[str, Any]:
    """Resolve Studio with a project, a timeline at 86400 and the plate's clip under the playhead."""
    qt_app()
    plate = write_acescg_plate(tmp_path / "plate")
    paint = write_painted_keys(tmp_path / "paint", list(KEY_FRAMES))
    project = dvr.Project(settings={"colorScienceMode": "davinciYRGBColorManagedv2"})
    timeline = dvr.Timeline(start_frame=TIMELINE_START)
    project._timeline = timeline
    pool = project.GetMediaPool()
    (clip,) = pool.ImportMedia([{"FilePath": plate.replace("####", "%04d"), "StartIndex": 1001, "EndIndex": 1048}])
    clip._properties.update({"Input Color Space": "ACEScg", "Resolution": "64x36"})
    timeline._place(1, dvr.TimelineItem(clip, RECORD, 48, 0))
    timeline._playhead = RECORD + 10
    notes = ("golden hour over the bay", "the sun touching the water", "moonlit night")
    for offset, note in zip((24, 44, 64), notes):  # marker keys are offsets from the timeline start
        timeline.AddMarker(offset, "Blue", "key", note, 1, "")
    timeline.AddMarker(2, "Red", "slate", "before the clip", 1, "")
    resolve = dvr.Resolve(project)
    dvr._launch(resolve)
    yield {"resolve": resolve, "project": project, "timeline": timeline, "clip": clip, "plate": plate,
           "paint": paint, "notes": notes}
    dvr._launch(None)


def test_markers_become_keyframes_and_the_result_lands_on_a_new_track(session: dict[str, Any]) -> None:
    panel = resolve_host.open_panel(dvr._App(session["resolve"]))  # what Workspace > Scripts > Retake runs
    panel.resize(1180, 760)
    panel.show()
    assert panel.plate_ref.path == session["plate"].replace("####", "%04d")
    assert (panel.plate_ref.first, panel.plate_ref.last, panel.plate_ref.colorspace) == (1001, 1048, "ACEScg")
    marks = panel.keyframes()
    assert [(m.frame, m.prompt) for m in marks] == list(zip(KEY_FRAMES, session["notes"]))
    assert "1 timeline marker(s) outside the clip" in panel.colour_label.text()
    for frame in KEY_FRAMES:  # the artist attaches each keyframe's painted frame
        panel.set_keyframe_file(frame, 3, session["paint"].replace("####", f"{frame:04d}"))
    panel.transform_combo.setCurrentText("propagate")
    panel.param_inputs["flow"].setCurrentText("dis")
    panel.structure.setValue(7)
    panel.locks["faces"].setChecked(True)
    wait_for(lambda: not panel.previews.busy(), what="the thumbnails")
    assert panel.table.cellWidget(0, 1).pixmap().width() == 96
    screenshot(panel, "2-plate-with-keyframes")

    assert panel.render(), panel.error_text()
    wait_for(lambda: panel.progress.value() >= 2 or panel.state != "rendering", what="the first frames")
    screenshot(panel, "3-rendering")
    wait_for(lambda: panel.state != "rendering", what="the render")
    assert panel.state == "done", panel.error_text()
    job = json.loads(Path(panel.prepared.job_path).read_text())
    assert job["controls"] == {"motion": 5, "structure": 7} and job["locks"]["faces"] is True
    assert [k["prompt"] for k in job["keyframes"]] == list(session["notes"])

    pool_clips = session["project"].GetMediaPool().GetRootFolder().GetClipList()
    imported = pool_clips[-1]
    assert imported.GetClipProperty("File Path").endswith("plate_retake.[1001-1048].exr")
    timeline = session["timeline"]
    assert timeline.GetTrackCount("video") == 2
    (placed,) = timeline.GetItemListInTrack("video", 2)
    assert placed.GetMediaPoolItem() is imported
    assert (placed.GetStart(), placed.GetDuration(), placed.GetEnd()) == (RECORD, 48, RECORD + 48)
    (source,) = timeline.GetItemListInTrack("video", 1)
    assert (placed.GetStart(), placed.GetEnd()) == (source.GetStart(), source.GetEnd())
    assert "video track 2 at frame 86424 (48 frames)" in panel.status_label.text()
    wait_for(lambda: not panel.wipe.before.isNull() and not panel.wipe.after.isNull(), what="the before/after preview")
    panel.wipe.position = 0.5
    screenshot(panel, "4-done-before-after")
    dispose(panel)


def test_unreachable_resolve_is_explained_in_the_panel(session: dict[str, Any]) -> None:
    dvr._launch(None)  # Resolve not running, or the free version (no external scripting)
    panel = resolve_host.open_panel(None)
    panel.resize(1180, 760)
    assert panel.state == "idle" and not panel.render_button.isEnabled()
    text = panel.error_text()
    assert "Resolve: DaVinci Resolve is not reachable" in text and "Studio" in text and "External scripting" in text
    screenshot(panel, "5-error-resolve-unreachable")
    dispose(panel)


def test_no_clip_under_the_playhead_says_where_to_put_it(session: dict[str, Any]) -> None:
    session["timeline"]._playhead = TIMELINE_START + 500
    panel = resolve_host.open_panel(dvr._App(session["resolve"]))
    assert "no video clip under the playhead" in panel.error_text() and "move the playhead" in panel.error_text()
    dispose(panel)


def test_a_failed_append_is_reported_not_assumed(session: dict[str, Any], tmp_path: Path) -> None:
    host = resolve_host.ResolveHost(resolve=session["resolve"])
    plate = host.plate()
    out = write_acescg_plate(tmp_path / "out", name="out")
    timeline = session["timeline"]
    real_add = timeline.AddTrack
    timeline.AddTrack = lambda *a: real_add(*a) and timeline._place(2, dvr.TimelineItem(None, RECORD, 5, 0)) or True
    with pytest.raises(resolve_host.HostError, match="did not place .* on video track 2"):
        host.put_back(resolve_host.OutputPlate(out, plate.first, plate.last))


@pytest.mark.parametrize("settings, clip, expected, note", [
    ({"colorScienceMode": "davinciYRGBColorManagedv2", "colorSpaceInput": "ARRI LogC4"}, "", "ARRI LogC4", "read as"),
    ({"colorScienceMode": "davinciYRGBColorManagedv2"}, "S-Gamut3.Cine/S-Log3", "S-Log3 S-Gamut3.Cine", "read as"),
    ({"colorScienceMode": "acescct", "colorAcesIDT": "ACEScg"}, "", "ACEScg", "ACES input transform"),
    ({"colorScienceMode": "acescct", "colorAcesIDT": ""}, "", "ACES2065-1", "No Input Transform"),
    ({"colorScienceMode": "davinciYRGBColorManagedv2", "colorSpaceInput": "Nikon N-Log"}, "", None,
     "'Nikon N-Log' has no OCIO equivalent"),
    ({"colorScienceMode": "davinciYRGB"}, "", None, "not colour managed"),
])
def test_resolve_colour_management_maps_to_ocio_or_says_it_cannot(settings: dict[str, str], clip: str,
                                                                   expected: str | None, note: str) -> None:
    from engine.colour import Colour

    space, notes = resolve_host.ocio_colorspace(settings, clip)
    assert space == expected and note in notes[0]
    if space is not None:
        Colour().resolve_colorspace(space)


def test_every_mapped_resolve_name_exists_in_the_engine_config() -> None:
    from engine.colour import Colour

    colour = Colour()
    for name in list(resolve_host.RESOLVE_SPACES.values()) + list(resolve_host.RESOLVE_ACES_IDTS.values()):
        colour.resolve_colorspace(name)


def test_outside_resolve_without_its_module_the_panel_says_how_to_reach_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "DaVinciResolveScript", None)  # not importable
    with pytest.raises(resolve_host.HostError, match="RESOLVE_SCRIPT_API=.*RESOLVE_SCRIPT_LIB=.*Modules to PYTHONPATH"):
        resolve_host.ResolveHost().plate()
