"""Nuke round trip on the fake ``nuke``: Read -> Retake node -> Render (the real engine CLI) -> Read of the result."""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.colour import Colour
from engine.io.exr import read_header, read_image
from engine.job import TRANSFORM_PARAMS
from tests.fakes.scenes import REPO, acescg_pixels, use_fakes, write_acescg_plate, write_painted_keys
from tests.fakes.scenes import no_engine_left_behind  # noqa: F401 - autouse: kills engines a failed test left

use_fakes()
import nuke  # noqa: E402 - the fake, from tests/fakes
import nukescripts  # noqa: E402

from plugin.hosts import nuke as nuke_host  # noqa: E402
from plugin.hosts.base import HostError  # noqa: E402


def _wait(render: nuke_host.NukeRender, timeout: float = 120.0, on_pump: Any = None) -> None:
    """Pump the fake main thread (Nuke's event loop) until the render's worker is finished."""
    deadline = time.monotonic() + timeout
    while render.running() and time.monotonic() < deadline:
        nuke._pump()
        if on_pump is not None:
            on_pump()
    nuke._pump()
    assert not render.running(), "the render did not finish in time"


@pytest.fixture
def script(tmp_path: Path) -> dict[str, Any]:
    """A Nuke session with Retake installed: plate Read (ACEScg, 1001-1048) and painted keyframes."""
    nuke._reset()
    nuke.pluginAddPath(str(REPO / "nuke_gizmos"))
    for name in ("init.py", "menu.py"):  # what Nuke runs at start-up, in this order
        path = REPO / "nuke_gizmos" / name
        exec(compile(path.read_text(), str(path), "exec"), {"__file__": str(path), "__name__": "__main__"})
    plate = write_acescg_plate(tmp_path / "plate")
    paint = write_painted_keys(tmp_path / "paint", [1001, 1040])
    read = nuke.nodes.Read(file=plate, first=1001, last=1048, origfirst=1001, origlast=1048, colorspace="ACEScg")
    paint_read = nuke.nodes.Read(file=paint, first=1001, last=1040, colorspace="ACEScg")
    node = nuke.createNode("Retake")
    node.setInput(0, read)
    node.setInput(1, paint_read)
    node.setXYpos(100, 200)
    node["keyframe"].setValueAt(1.0, 1001)
    node["keyframe"].setValueAt(0.8, 1040)
    node["prompts"].setValue("1001: golden hour over the bay; 1040: moonlit night")
    node["transform"].setValue("propagate")
    node["transform_params"].setValue("flow=dis")
    return {"node": node, "read": read, "plate": plate, "tmp": tmp_path}


def test_startup_registers_the_node_the_menus_and_the_docked_panel(script: dict[str, Any]) -> None:
    assert nuke.toolbar("Nodes").findItem("Retake/Retake")[0] == "nuke.createNode('Retake')"
    assert nuke.menu("Nuke").findItem("Retake/Retake panel") is not None
    widget, title = nukescripts._registered["dev.retake.panel"]
    assert (widget, title) == ("plugin.hosts.nuke_panel.RetakeNukePanel", "Retake")
    # onCreate offers every transformation the engine has, not a list frozen in the gizmo.
    assert script["node"]["transform"].values() == list(TRANSFORM_PARAMS)
    for name in ("motion", "structure"):
        assert script["node"][name]._range == (1.0, 9.0) and script["node"][name].value() == 5


def test_render_makes_a_read_of_the_result_beside_the_node(script: dict[str, Any]) -> None:
    node = script["node"]
    render = nuke_host.render_node(node)
    assert render is not None
    _wait(render)
    assert render.state == "done", render.message
    reads = [n for n in nuke.allNodes("Read") if n is not script["read"] and "paint" not in n["file"].value()]
    assert len(reads) == 1
    result = reads[0]
    pattern = result["file"].value()
    assert pattern.endswith("plate_Retake1.####.exr") and pattern.startswith(str(script["tmp"] / "plate" / "retake"))
    assert (result["first"].value(), result["last"].value()) == (1001, 1048)
    assert (result["origfirst"].value(), result["origlast"].value()) == (1001, 1048)
    assert result["colorspace"].value() == "ACES2065-1" and result["raw"].value() is False
    assert result.xpos() > node.xpos() and result.ypos() == node.ypos()
    frames = sorted(Path(pattern).parent.glob("plate_Retake1.*.exr"))
    assert len(frames) == 48 and frames[0].name == "plate_Retake1.1001.exr"
    assert read_header(str(frames[0])).aces_container
    # The job carried the prompts, strengths and the keyframe images rendered from input 2.
    job = json.loads(Path(render.prepared.job_path).read_text())
    keys = {k["frame"]: k for k in job["keyframes"]}
    assert keys[1001]["prompt"] == "golden hour over the bay" and keys[1040]["strength"] == 0.8
    assert job["plate"] == {"path": script["plate"], "first": 1001, "last": 1048, "colorspace": "ACEScg"}
    assert all(os.path.isfile(k["image"]) and k["colorspace"] == "ACEScg" for k in keys.values())
    # Propagation is exact at a keyframe: frame 1001 is the painted frame, now in ACES2065-1.
    painted = acescg_pixels(1001, 64, 36) * np.array([1.4, 1.0, 0.6], dtype=np.float32)
    expected = Colour().convert(painted, "ACEScg", "ACES2065-1")
    np.testing.assert_allclose(read_image(str(frames[0])), expected, rtol=2e-3, atol=2e-3)
    task = nuke._progress_tasks[-1]
    assert task._history[-1] == 100 and "frames/s" in task._message
    assert node["status"].value().startswith(result.name())


def test_cancel_mid_render_keeps_whole_frames_and_makes_no_read(script: dict[str, Any]) -> None:
    reads_before = len(nuke.allNodes("Read"))
    render = nuke_host.render_node(script["node"])
    assert render is not None

    def cancel_after_first_frame() -> None:
        tasks = nuke._progress_tasks
        if tasks and tasks[-1]._history and not tasks[-1]._cancelled:
            tasks[-1]._cancel()  # the user presses Cancel on Nuke's progress bar

    _wait(render, on_pump=cancel_after_first_frame)
    assert render.state == "cancelled" and render.process.exit_code == 130
    assert len(nuke.allNodes("Read")) == reads_before
    folder = script["tmp"] / "plate" / "retake"
    written = sorted(folder.glob("plate_Retake1.*.exr"))
    assert 1 <= len(written) < 48
    assert not [p for p in folder.iterdir() if "retake-tmp" in p.name]
    for path in written:  # every frame that exists is whole
        assert read_image(str(path)).shape == (36, 64, 3)
    assert "cancelled" in script["node"]["status"].value()


def test_a_node_without_a_plate_says_what_to_connect(script: dict[str, Any]) -> None:
    node = script["node"]
    node.setInput(0, None)
    assert nuke_host.render_node(node) is None
    assert "Retake1 has no plate" in nuke._messages[-1] and "first input" in nuke._messages[-1]
    assert node["status"].value().startswith("error:")


def test_bad_settings_are_refused_before_anything_runs(script: dict[str, Any]) -> None:
    node = script["node"]
    node["transform_params"].setValue("flow=optical")
    assert nuke_host.render_node(node) is None
    assert "$.transform.flow" in nuke._messages[-1]


def test_keyframes_from_the_list_knob_when_nothing_is_animated(script: dict[str, Any]) -> None:
    node = nuke.createNode("Retake")
    node.setInput(0, script["read"])
    node["keyframe_list"].setValue("1001, 1024 1048")
    node["prompts"].setValue("1024: dusk")
    marks = nuke_host.NukeHost(node).keyframes()
    assert [(m.frame, m.prompt) for m in marks] == [(1001, None), (1024, "dusk"), (1048, None)]


def test_nodes_are_created_only_on_the_main_thread() -> None:
    errors: list[Exception] = []

    def off_main() -> None:
        try:
            nuke.createNode("Read")
        except RuntimeError as error:
            errors.append(error)

    thread = threading.Thread(target=off_main)
    thread.start()
    thread.join()
    assert errors and "main thread" in str(errors[0])


@pytest.mark.parametrize("value, management, expected", [
    ("ACEScg", "OCIO", "ACEScg"),
    ("default (ACEScg)", "OCIO", "ACEScg"),
    ("default", "OCIO", "ACES - ACEScg"),
    ("ACES - ACEScg", "OCIO", "ACES - ACEScg"),
    ("linear", "Nuke", "Linear Rec.709 (sRGB)"),
    ("sRGB", "Nuke", "sRGB Encoded Rec.709 (sRGB)"),
    ("AlexaV3LogC", "Nuke", "ARRI LogC3 (EI800)"),
])
def test_read_colorspaces_map_to_ocio_names(value: str, management: str, expected: str) -> None:
    assert nuke_host.ocio_colorspace(value, "ACES - ACEScg", management=management) == expected
    Colour().resolve_colorspace(expected)  # and the engine's config knows the name


def test_nuke_colorspaces_without_an_ocio_equivalent_are_refused_with_what_to_do() -> None:
    with pytest.raises(HostError, match="'Cineon' has no equivalent.*OCIO colour management"):
        nuke_host.ocio_colorspace("Cineon", management="Nuke")


def test_root_colour_settings_choose_the_engine_config() -> None:
    cg = nuke_host.ocio_config({"colorManagement": "OCIO", "OCIO_config": "fn-nuke_cg-config-v1.0.0_aces-v1.3_ocio-v2.1"}, {})
    assert cg.config == "ocio://cg-config-latest"
    custom = nuke_host.ocio_config({"colorManagement": "OCIO", "OCIO_config": "custom",
                                    "customOCIOConfigPath": "/studio/config.ocio"}, {})
    assert custom.config == "/studio/config.ocio"
    env = nuke_host.ocio_config({"colorManagement": "OCIO", "OCIO_config": "custom"}, {"OCIO": "/env/config.ocio"})
    assert env.config is None and "$OCIO" in env.notes[0]  # the engine reads $OCIO itself, as Nuke does
    legacy = nuke_host.ocio_config({"colorManagement": "OCIO", "OCIO_config": "aces_1.2"}, {})
    assert legacy.config == "ocio://studio-config-latest" and "aliases" in legacy.notes[0]
    with pytest.raises(HostError, match="custom"):
        nuke_host.ocio_config({"colorManagement": "OCIO", "OCIO_config": "custom", "customOCIOConfigPath": ""}, {})


def test_the_docked_panel_opens_on_the_retake_node(script: dict[str, Any]) -> None:
    from tests.fakes.screens import dispose, qt_app

    qt_app()
    widget = nukescripts._show("dev.retake.panel")  # what Nuke does when the user opens the pane
    panel = widget.panel
    assert panel.plate_ref.path == script["plate"] and panel.plate_ref.colorspace == "ACEScg"
    assert [(m.frame, m.prompt) for m in panel.keyframes()] == [(1001, "golden hour over the bay"),
                                                               (1040, "moonlit night")]
    assert panel.settings().params["flow"] == "dis"  # the node's knobs, shown in the panel
    panel.table.selectRow(1)
    panel.jump_to_selected()
    assert nuke.frame() == 1040 and panel.preview_frame.value() == 1040
    dispose(widget)
