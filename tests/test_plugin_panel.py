"""The shared panel on its own (standalone host): empty state, limits, engine-driven controls, errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine import job as engine_job
from plugin.hosts.base import KeyframeMark
from plugin.hosts.standalone import StandaloneHost
from plugin.jobs import PANEL_MAX_KEYFRAMES
from tests.fakes.scenes import write_acescg_plate
from tests.fakes.scenes import no_engine_left_behind  # noqa: F401 - autouse: kills engines a failed test left
from tests.fakes.screens import dispose, qt_app, screenshot, wait_for


@pytest.fixture
def plate(tmp_path: Path) -> str:
    return write_acescg_plate(tmp_path / "plate", last=1024, width=64, height=36)


def _panel(host: StandaloneHost):
    from plugin.panel import RetakePanel

    qt_app()
    panel = RetakePanel(host)
    panel.resize(1180, 760)
    panel.show()
    return panel


def test_empty_standalone_panel_says_what_to_do() -> None:
    panel = _panel(StandaloneHost())
    assert panel.open_button.isVisible()
    assert not panel.load_from_host()
    assert "no plate is open" in panel.error_text() and "Open plate" in panel.error_text()
    assert panel.transform_combo.currentText() == "propagate"
    screenshot(panel, "1-empty")
    dispose(panel)


def test_a_plate_picked_as_one_frame_becomes_its_sequence(plate: str) -> None:
    panel = _panel(StandaloneHost(plate.replace("####", "1003")))
    assert panel.load_from_host(), panel.error_text()
    assert (panel.plate_ref.path, panel.plate_ref.first, panel.plate_ref.last) == (plate, 1001, 1024)
    assert panel.plate_ref.colorspace is None and "colour space from the file" in panel.plate_label.text()
    wait_for(lambda: not panel.wipe.before.isNull(), what="the plate preview")
    dispose(panel)


def test_sixteen_keyframes_at_most_with_a_clear_message(plate: str) -> None:
    panel = _panel(StandaloneHost(plate))
    panel.load_from_host()
    for frame in range(1001, 1001 + PANEL_MAX_KEYFRAMES):
        assert panel.add_keyframe(frame)
    assert not panel.add_keyframe(1020)
    assert len(panel.keyframes()) == PANEL_MAX_KEYFRAMES and not panel.add_button.isEnabled()
    assert "16 keyframes is the panel's maximum" in panel.limit_label.text()
    panel.set_keyframes([KeyframeMark(f) for f in range(1001, 1021)])  # a host with 20 markers
    assert len(panel.keyframes()) == 16 and "has 20 keyframes" in panel.limit_label.text()
    assert not panel.add_keyframe(999) and len(panel.keyframes()) == 16
    panel.set_keyframes([KeyframeMark(1001)])
    assert not panel.add_keyframe(999) and "outside the plate (1001–1024)" in panel.error_text()
    assert not panel.add_keyframe(1001) and "already a keyframe" in panel.error_text()
    dispose(panel)


def test_transformations_and_their_parameters_come_from_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(engine_job.TRANSFORM_PARAMS, "relight",
                        {"direction": (("key", "rim", "fill"), "key"), "softness": (float, 0.5)})
    panel = _panel(StandaloneHost())
    names = [panel.transform_combo.itemText(i) for i in range(panel.transform_combo.count())]
    assert names == list(engine_job.TRANSFORM_PARAMS)
    panel.transform_combo.setCurrentText("relight")
    assert set(panel.param_inputs) == {"direction", "softness"}
    assert [panel.param_inputs["direction"].itemText(i) for i in range(3)] == ["key", "rim", "fill"]
    panel.param_inputs["direction"].setCurrentText("rim")
    assert panel.settings().params == {"direction": "rim", "softness": "0.5"}
    dispose(panel)


def test_writing_over_the_plate_is_refused_and_shown_in_the_panel(plate: str) -> None:
    panel = _panel(StandaloneHost(plate))
    panel.load_from_host()
    panel.set_keyframes([KeyframeMark(1001, "dusk", image=plate.replace("####", "1001"))])
    panel.output_edit.setText(plate)  # the plate itself: Retake never writes over a source
    panel.param_inputs["flow"].setCurrentText("dis")
    assert panel.render()
    wait_for(lambda: panel.state != "rendering", what="the engine's answer")
    assert panel.state == "failed" and panel.error_label.isVisible()
    assert "plate.####.exr: the output path is the plate's own path" in panel.error_text()
    assert "never writes over a source" in panel.error_text()
    assert panel.render_button.isEnabled() and not panel.cancel_button.isEnabled()
    screenshot(panel, "6-error-engine")
    dispose(panel)


def test_engine_errors_name_the_file_and_what_to_do(plate: str, tmp_path: Path) -> None:
    panel = _panel(StandaloneHost(plate))
    panel.load_from_host()
    panel.set_keyframes([KeyframeMark(1001, image=str(tmp_path / "missing.exr"))])
    panel.output_edit.setText(str(tmp_path / "out" / "shot.####.exr"))
    panel.param_inputs["flow"].setCurrentText("dis")
    assert panel.render()
    wait_for(lambda: panel.state != "rendering", what="the engine's answer")
    assert panel.state == "failed"
    assert "missing.exr" in panel.error_text() and "does not exist" in panel.error_text()
    dispose(panel)


def test_retake_panel_opens_the_standalone_window(plate: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from PySide6.QtWidgets import QApplication

    from engine.cli import main
    from plugin.panel import RetakePanel

    qt_app()
    monkeypatch.setattr(QApplication, "exec", lambda self: 0)  # return at once instead of running the loop
    assert main(["panel", plate, "--colorspace", "ACEScg"]) == 0
    (window,) = [w for w in QApplication.topLevelWidgets() if isinstance(w, RetakePanel) and w.isVisible()]
    assert window.plate_ref.colorspace == "ACEScg" and window.plate_ref.first == 1001
    wait_for(lambda: not window.previews.busy(), what="the previews")
    dispose(window)


def test_track_faces_then_show_the_tracks_over_the_plate(tmp_path: Path) -> None:
    """Track faces runs the engine off the UI thread; the preview then has the faces' landmarks drawn."""
    import numpy as np
    from PySide6.QtGui import QImage

    from engine.analysis import models
    from engine.colour import Colour
    from engine.io.aces_exr import write_exr
    from engine.io.header import AP1
    from tests import analysis_scenes as scenes

    if any(s.state != "ok" for s in models.model_status()):
        pytest.skip("analysis models not installed; run `retake models --install` (./setup.sh does it)")
    colour = Colour()
    back = scenes.background(480, 270)
    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(3):
        srgb = scenes.render(back, [scenes.Placement(160 + 4 * i, 130, 110)]).astype(np.float32) / 255.0
        write_exr(str(folder / f"faces.{1001 + i:04d}.exr"), colour.convert(srgb, "sRGB Encoded Rec.709 (sRGB)", "ACEScg"),
                  chromaticities=AP1, aces_container=False, frame=1001 + i)
    panel = _panel(StandaloneHost(str(folder / "faces.####.exr"), colorspace="ACEScg"))
    assert panel.load_from_host(), panel.error_text()
    wait_for(lambda: not panel.wipe.before.isNull(), what="the plate preview")
    plain = panel.wipe.before.convertToFormat(QImage.Format.Format_RGB888)
    assert not panel.tracks_check.isEnabled()
    panel.track_faces()
    wait_for(lambda: panel.tracks_check.isChecked() and panel.track_button.isEnabled(), what="the face tracks")
    wait_for(lambda: panel._before is not None and panel._before.endswith(".tracks.png"), what="the tracked preview")
    wait_for(lambda: panel.wipe.before.convertToFormat(QImage.Format.Format_RGB888) != plain,
             what="the preview with tracks")
    screenshot(panel, "7-face-tracks")
    panel.tracks_check.setChecked(False)
    wait_for(lambda: panel._before is not None and not panel._before.endswith(".tracks.png"), what="tracks hidden")
    dispose(panel)


def test_choosing_character_ticks_its_performance_locks() -> None:
    panel = _panel(StandaloneHost())
    assert not any(box.isChecked() for box in panel.locks.values())
    panel.transform_combo.setCurrentText("character")
    assert [n for n, box in panel.locks.items() if box.isChecked()] == ["faces", "bodies", "poses"]
    assert panel.settings().locks == {"faces": True, "bodies": True, "poses": True, "blocking": False}
    dispose(panel)


def test_change_style_prompts_are_flagged_with_a_target_state_rewrite(plate: str, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RETAKE_MODEL_DIR", raising=False)
    panel = _panel(StandaloneHost(plate))
    panel.load_from_host()
    assert "no model folder set" in panel.model_label.text()
    panel.set_keyframes([KeyframeMark(1001, "golden hour over the bay"), KeyframeMark(1010, "change the sky to purple")])
    lines = panel.lint_prompts()
    assert len(lines) == 1 and lines[0].startswith("1010:") and "a purple sky" in lines[0]
    assert panel.prompt_label.isVisible()
    panel.table.item(1, 2).setText("a purple sky over the bay")   # the artist rewrites it
    assert not panel.prompt_label.isVisible()
    panel.set_model_folder(str(tmp_path))
    assert str(tmp_path) in panel.model_label.text()
    import os
    assert os.environ["RETAKE_MODEL_DIR"] == str(tmp_path)
    screenshot(panel, "8-prompts-and-model")
    dispose(panel)
