"""Nuke adapter: the Retake node's plate, keyframes and colour; its result as a Read beside it.

The node is the ``Retake`` gizmo (``nuke_gizmos/Retake.gizmo``): input 0 leads up to the
plate's Read, optional input 1 carries the artist's painted/graded keyframes. Keyframes
are the keys of the ``keyframe`` knob (a key's value is its strength) or, when it is not
animated, the frames listed in ``keyframe_list``; ``prompts`` holds ``1001: a purple sky;
1040: ...``. Render (the node's button) runs the engine out of process on a worker thread
with a ``nuke.ProgressTask`` and creates the Read on the main thread.

Standard library only at import (this runs in Nuke's Python, GUI or terminal).
"""
from __future__ import annotations

import os
import queue
import re
import threading
from typing import Any

from plugin.engine_process import EngineProcess
from plugin.hosts.base import ColourContext, Host, HostError, KeyframeMark, OutputPlate, PlateRef
from plugin.jobs import PreparedRender, RenderSettings, prepare_render, transform_names

# Nuke's own (non-OCIO) colour spaces, as names of OCIO's studio config. None: no
# equivalent there (a transfer curve without primaries, or a film log the config lacks).
NUKE_DEFAULT_SPACES: dict[str, str | None] = {
    "linear": "Linear Rec.709 (sRGB)",
    "sRGB": "sRGB Encoded Rec.709 (sRGB)",
    "rec709": "Camera Rec.709",
    "Gamma1.8": "Gamma 1.8 Encoded Rec.709",
    "Gamma2.2": "Gamma 2.2 Encoded Rec.709",
    "Gamma2.4": "Gamma 2.4 Encoded Rec.709",
    "AlexaV3LogC": "ARRI LogC3 (EI800)",
    "Cineon": None,
    "Panalog": None,
    "REDLog": None,
    "ViperLog": None,
    "SLog": None,
    "SLog1": None,
    "SLog2": None,
    "SLog3": None,
    "CLog": None,
    "Log3G10": None,
    "Log3G12": None,
    "BT1886": None,
    "st2084": None,
    "rec2020": None,
}

# Nuke's built-in configs (root OCIO_config) -> the config the engine loads. Nuke ships
# the fn-nuke configs inside the application; OpenColorIO's built-ins are the same
# ACES configs by name, and the studio config's aliases cover the ACES 1.x names
# ("ACES - ACEScg").
_NUKE_CONFIGS = (
    ("fn-nuke_cg-config", "ocio://cg-config-latest"),
    ("fn-nuke_studio-config", "ocio://studio-config-latest"),
    ("cg-config", "ocio://cg-config-latest"),
    ("studio-config", "ocio://studio-config-latest"),
    ("aces_1", "ocio://studio-config-latest"),
)


def _nuke() -> Any:
    import nuke  # Nuke's module: importable only inside Nuke (or the tests' fake)

    return nuke


def ocio_colorspace(knob_value: str, working_space: str | None = None, *, management: str = "OCIO") -> str:
    """A Read/Write ``colorspace`` knob value as an OCIO colour-space name.

    ``default`` / ``default (ACEScg)`` mean the knob's default, which Nuke shows in
    parentheses (else the working space). In Nuke's own colour management the names
    are Nuke's (``linear``, ``sRGB``, ``AlexaV3LogC``) and are mapped to the studio
    config; a name with no equivalent is a HostError saying what to do.
    """
    value = knob_value.strip()
    match = re.fullmatch(r"default \((.+)\)", value)
    if match:
        value = match.group(1)
    elif value in ("default", ""):
        value = working_space or "scene_linear"
    if management == "Nuke" or value in NUKE_DEFAULT_SPACES:
        if value in NUKE_DEFAULT_SPACES:
            mapped = NUKE_DEFAULT_SPACES[value]
            if mapped is None:
                raise HostError(f"Nuke's colour space {value!r} has no equivalent in OCIO's studio config",
                                hint="switch Project Settings > Color to OCIO colour management and pick the "
                                     "Read's colour space there")
            return mapped
    return value


def ocio_config(root_values: dict[str, str], environ: dict[str, str] | None = None) -> ColourContext:
    """Nuke's root colour settings as the engine's OCIO config, with notes on what was assumed."""
    environ = dict(os.environ if environ is None else environ)
    if environ.get("OCIO"):
        return ColourContext(None, (f"$OCIO is set ({environ['OCIO']}): Nuke and Retake both use it",))
    management = root_values.get("colorManagement", "Nuke")
    if management != "OCIO":
        return ColourContext(None, ("Nuke colour management: Read colour spaces are mapped to OCIO's studio config",))
    config = root_values.get("OCIO_config", "")
    if config == "custom":
        path = root_values.get("customOCIOConfigPath", "")
        if not path:
            raise HostError("the project's OCIO config is 'custom' but no config file is set",
                            hint="set Project Settings > Color > custom OCIO config")
        return ColourContext(path)
    for prefix, uri in _NUKE_CONFIGS:
        if config.startswith(prefix):
            note = () if "config" in prefix else (f"Nuke's {config} config: Retake uses OCIO's studio config, "
                                                   "whose aliases include the ACES 1.x names",)
            return ColourContext(uri, note)
    return ColourContext(None, (f"Nuke's OCIO config {config!r} is not one Retake knows: using OCIO's studio config "
                                "(set $OCIO to the same config to be sure)",))


def parse_prompts(text: str) -> dict[int, str]:
    """``"1001: a purple sky; 1040: moonlit night"`` (or one per line) -> {1001: ..., 1040: ...}."""
    prompts: dict[int, str] = {}
    for entry in re.split(r"[;\n]", text or ""):
        match = re.fullmatch(r"\s*(-?\d+)\s*[:=]\s*(.+?)\s*", entry)
        if match:
            prompts[int(match.group(1))] = match.group(2)
    return prompts


def parse_params(text: str) -> dict[str, Any]:
    """``"flow=dis, interpolation=linear"`` -> {"flow": "dis", "interpolation": "linear"}."""
    params: dict[str, Any] = {}
    for entry in re.split(r"[,;\s]+", text or ""):
        if "=" in entry:
            key, value = entry.split("=", 1)
            params[key.strip()] = value.strip()
    return params


class NukeHost(Host):
    """The Retake node ``node`` and the script around it."""

    name = "Nuke"

    def __init__(self, node: Any) -> None:
        self.node = node
        self.nuke = _nuke()

    def _root_values(self) -> dict[str, str]:
        root = self.nuke.root()
        values: dict[str, str] = {}
        for name in ("colorManagement", "OCIO_config", "customOCIOConfigPath", "workingSpaceLUT"):
            knob = root.knob(name)
            if knob is not None:
                values[name] = str(knob.value())
        return values

    def _read(self) -> Any:
        node = self.node.input(0)
        while node is not None and node.Class() != "Read":
            node = node.input(0)
        return node

    def plate(self) -> PlateRef:
        read = self._read()
        if read is None:
            raise HostError(f"{self.node.name()} has no plate",
                            hint="connect the plate's Read to its first input (plate)")
        path = self.nuke.filename(read)
        if not path:
            raise HostError(f"{read.name()} has no file", hint="set the Read's file to the plate's frames")
        root = self._root_values()
        if read["raw"].value():
            colorspace = "Raw"
        else:
            colorspace = ocio_colorspace(str(read["colorspace"].value()), root.get("workingSpaceLUT"),
                                         management=root.get("colorManagement", "OCIO"))
        return PlateRef(path=path, first=int(read["first"].value()), last=int(read["last"].value()),
                        colorspace=colorspace, label=read.name(), width=read.width() or None,
                        height=read.height() or None)

    def keyframes(self) -> list[KeyframeMark]:
        knob = self.node["keyframe"]
        prompts = parse_prompts(str(self.node["prompts"].value()))
        marks: dict[int, KeyframeMark] = {}
        if knob.isAnimated():
            for key in knob.animation(0).keys():
                frame = int(round(key.x))
                marks[frame] = KeyframeMark(frame, prompts.get(frame), strength=max(0.0, min(1.0, float(key.y))))
        else:
            for text in re.findall(r"-?\d+", str(self.node["keyframe_list"].value())):
                marks[int(text)] = KeyframeMark(int(text), prompts.get(int(text)))
        return [marks[f] for f in sorted(marks)]

    def colour(self) -> ColourContext:
        return ocio_config(self._root_values())

    def current_frame(self) -> int | None:
        return int(self.nuke.frame())

    def show_frame(self, frame: int) -> None:
        self.nuke.frame(frame)

    def initial_settings(self) -> RenderSettings:
        return settings_from_node(self.node)

    def keyframe_images(self, frames: list[int], folder: str) -> dict[int, tuple[str, str | None]]:
        """Render input 1 (the artist's keyframes) at ``frames`` to EXRs in the working space.

        A temporary Write (``raw``: the script's working space, untouched) is executed frame
        by frame with ``nuke.execute`` and deleted again. Main thread only (it creates a node).
        """
        source = self.node.input(1)
        if source is None or not frames:
            return {}
        root = self._root_values()
        working = ocio_colorspace("default", root.get("workingSpaceLUT"), management=root.get("colorManagement", "OCIO"))
        os.makedirs(folder, exist_ok=True)
        pattern = os.path.join(folder, f"{self.node.name()}_key.####.exr")
        write = self.nuke.nodes.Write()
        try:
            write.setInput(0, source)
            write["file"].setValue(pattern)
            write["file_type"].setValue("exr")
            write["raw"].setValue(True)
            write["datatype"].setValue("32 bit float")
            write["create_directories"].setValue(True)
            for frame in frames:
                self.nuke.execute(write, frame, frame)
        finally:
            self.nuke.delete(write)
        return {frame: (pattern.replace("####", f"{frame:04d}"), working) for frame in frames}

    def default_output(self, plate: PlateRef) -> str:
        directory, name = os.path.split(plate.path)
        stem = name.split(".")[0] or "plate"
        return os.path.join(directory, "retake", f"{stem}_{self.node.name()}.####.exr")

    def put_back(self, output: OutputPlate) -> str:
        """A Read of the result beside the node, on the source's frames, in the output's colour space."""
        read = self.nuke.nodes.Read()
        read["file"].setValue(output.path)
        for knob in ("first", "origfirst"):
            read[knob].setValue(output.first)
        for knob in ("last", "origlast"):
            read[knob].setValue(output.last)
        colorspace = output.colorspace
        if self._root_values().get("OCIO_config", "").startswith("aces_1") and colorspace == "ACES2065-1":
            colorspace = "ACES - ACES2065-1"  # the ACES 1.x configs' spelling
        read["colorspace"].setValue(colorspace)
        read["raw"].setValue(False)
        read.setXYpos(self.node.xpos() + self.node.screenWidth() + 60, self.node.ypos())
        return f"{read.name()} reads {output.path} ({output.first}-{output.last}, {colorspace})"


def settings_from_node(node: Any) -> RenderSettings:
    """The node's knobs as panel settings."""
    locks = {name: bool(node[f"lock_{name}"].value()) for name in ("faces", "bodies", "poses", "blocking")}
    return RenderSettings(
        transform=str(node["transform"].value()),
        params=parse_params(str(node["transform_params"].value())),
        motion=int(round(float(node["motion"].value()))),
        structure=int(round(float(node["structure"].value()))),
        locks=locks,
        output_format=str(node["output_format"].value()),
        quality=str(node["quality"].value()),
        output_path=str(node["output"].value() or ""),
    )


class NukeRender:
    """One render of a Retake node: the engine on a worker thread, the Read made on the main thread.

    ``state`` ends as "done", "cancelled" or "failed"; ``message`` says what happened
    (also shown in the node's ``status`` knob and, for failures, with ``nuke.message``).
    """

    def __init__(self, host: NukeHost, prepared: PreparedRender) -> None:
        self.host = host
        self.prepared = prepared
        self.nuke = host.nuke
        self.state = "running"
        self.message = ""
        self.read_name: str | None = None
        self.process: EngineProcess | None = None
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name=f"retake-{host.node.name()}", daemon=True)

    def start(self) -> "NukeRender":
        self.process = EngineProcess(self.prepared.job_path, self._events.put)
        self._set_status(f"rendering {self.prepared.output.first}-{self.prepared.output.last} ...")
        self.process.start()
        self.thread.start()
        return self

    def _set_status(self, text: str) -> None:
        knob = self.host.node.knob("status")
        if knob is not None:
            knob.setValue(text)

    def _run(self) -> None:
        assert self.process is not None
        task = self.nuke.ProgressTask(f"Retake {self.host.node.name()}")
        last: dict[str, Any] = {}
        while True:
            if task.isCancelled() and not self.process.cancelled:
                self.process.cancel()
            try:
                event = self._events.get(timeout=0.1)
            except queue.Empty:
                if not self.process.running() and self._events.empty():
                    break
                continue
            last = event
            if event["event"] == "frame":
                task.setProgress(int(100 * event["done"] / max(1, event["total"])))
                eta = "" if event.get("eta_s") is None else f", ETA {event['eta_s']:.0f} s"
                task.setMessage(f"frame {event['frame']} ({event['done']}/{event['total']}), "
                                f"{event['fps']:.1f} frames/s{eta}")
            elif event["event"] == "warning":
                task.setMessage(event["message"])
            if event["event"] in ("done", "error"):
                break
        self.process.wait()
        del task
        if last.get("event") == "done" and not self.process.cancelled:
            self.message = self.nuke.executeInMainThreadWithResult(self._finish, ())
            self.state = "done"
        else:
            self.state = "cancelled" if self.process.cancelled else "failed"
            text = last.get("message", "the engine stopped")
            if last.get("hint"):
                text += f" — {last['hint']}"
            self.message = text
            self.nuke.executeInMainThread(self._report, (text, self.state == "failed"))

    def _finish(self) -> str:
        text = self.host.put_back(self.prepared.output)
        self._set_status(text)
        return text

    def _report(self, text: str, show: bool) -> None:
        self._set_status(("error: " if show else "") + text)
        if show:
            self.nuke.message(f"Retake: {text}")

    def running(self) -> bool:
        return self.thread.is_alive()

    def cancel(self) -> None:
        if self.process is not None:
            self.process.cancel()


def render_node(node: Any = None) -> NukeRender | None:
    """The Render button: validate and write the job here (main thread), render on a worker."""
    from engine.errors import JobError
    from plugin.jobs import PanelLimitError

    nuke = _nuke()
    node = node if node is not None else nuke.thisNode()
    host = NukeHost(node)
    try:
        prepared = prepare_render(host, settings_from_node(node))
    except (HostError, JobError, PanelLimitError) as error:
        text = str(error)
        status = node.knob("status")
        if status is not None:
            status.setValue("error: " + text)
        nuke.message(f"Retake: {text}")
        return None
    return NukeRender(host, prepared).start()


def on_create(node: Any = None) -> None:
    """The gizmo's onCreate: offer every transformation the installed engine has."""
    node = node if node is not None else _nuke().thisNode()
    knob = node.knob("transform")
    if knob is not None:
        knob.setValues(transform_names())
