"""A fake of Foundry Nuke's ``nuke`` module: the surface ``../shared/HOSTS.md`` describes.

Faithful where the adapters depend on it, and checked against the ``types-nuke`` stubs
(tests/test_hosts_stubs.py):

* nodes are made by ``createNode(class)`` / ``nodes.Read(...)``; a class that is not built
  in is looked up as ``CLASS.gizmo`` on the plugin path (``pluginAddPath``), whose Tcl
  ``addUserKnob`` lines become the node's knobs, so the real gizmo file is what is tested;
* creating nodes off the main thread raises, as Nuke's own threading rules demand;
  ``executeInMainThread[WithResult]`` queue work that ``_pump()`` runs on the main thread
  (the stand-in for Nuke's event loop);
* knobs animate (``setValueAt`` / ``animation(0).keys()`` with ``.x``/``.y``);
* ``execute(write, first, last)`` renders a Write whose input leads to a Read: it reads
  the Read's frame, converts its colour space to the script's working space (through
  OCIO, as Nuke does) and writes an EXR, so keyframe images really exist on disk;
* ``ProgressTask`` can be cancelled by the test (``_cancel()``), as the user would.
"""
from __future__ import annotations

import os
import queue
import re
import threading
from typing import Any, Callable

from _recording import Recorded, api

NUKE_VERSION_MAJOR = 16
NUKE_VERSION_STRING = "16.0v1"
env: dict[str, Any] = {"gui": True}

_plugin_paths: list[str] = []
_nodes: list["Node"] = []
_main_queue: "queue.Queue[tuple[Callable[..., Any], tuple, dict, queue.Queue | None]]" = queue.Queue()
_this_node: "Node | None" = None
_messages: list[str] = []
_menus: dict[str, "Menu"] = {}
_toolbars: dict[str, "ToolBar"] = {}
_progress_tasks: list["ProgressTask"] = []


class CancelledError(Exception):
    pass


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _require_main_thread(what: str) -> None:
    if not _on_main_thread():
        raise RuntimeError(f"{what} must be called from the main thread "
                           "(use nuke.executeInMainThread from worker threads)")


# -- knobs -------------------------------------------------------------------


class AnimationKey(Recorded):
    def __init__(self, x: float, y: float) -> None:
        self.x = x
        self.y = y


class AnimationCurve(Recorded):
    def __init__(self, knob: "Knob") -> None:
        self._knob = knob

    def keys(self) -> list[AnimationKey]:
        return [AnimationKey(float(x), float(y)) for x, y in sorted(self._knob._keys.items())]

    def knob(self) -> "Knob":
        return self._knob


class Knob(Recorded):
    def __init__(self, name: str, label: str | None = None, value: Any = None) -> None:
        self._name = name
        self._label = label or name
        self._value = value
        self._keys: dict[float, Any] = {}
        self._flags: set[str] = set()

    def Class(self) -> str:
        return type(self).__name__

    def name(self) -> str:
        return self._name

    def label(self) -> str:
        return self._label

    def value(self, *args: Any) -> Any:
        return self._value

    def getValue(self, *args: Any) -> Any:
        return self._value

    def setValue(self, val: Any, *args: Any) -> bool:
        self._value = val
        return True

    def isAnimated(self, *args: Any) -> bool:
        return bool(self._keys)

    def setAnimated(self, *args: Any) -> bool:
        return True

    def setValueAt(self, val: Any, time: float, *args: Any) -> bool:
        self._keys[float(time)] = val
        return True

    def getValueAt(self, frame: float, *args: Any) -> Any:
        return self._keys.get(float(frame), self._value)

    def setFlag(self, flag: int) -> None:
        self._flags.add(str(flag))

    def setVisible(self, visible: bool) -> None:
        self._flags.discard("INVISIBLE") if visible else self._flags.add("INVISIBLE")


class Array_Knob(Knob):
    """Knobs with values that animate (types-nuke puts ``animation`` here, not on Knob)."""

    def animation(self, index: int) -> AnimationCurve | None:
        return AnimationCurve(self) if self._keys else None


class Double_Knob(Array_Knob):
    def __init__(self, name: str, label: str | None = None, value: Any = 0.0) -> None:
        super().__init__(name, label, value)
        self._range: tuple[float, float] = (0.0, 1.0)

    def value(self, *args: Any) -> Any:
        return float(self._value)


class Int_Knob(Array_Knob):
    def value(self, *args: Any) -> int:
        return int(self._value or 0)


class Boolean_Knob(Array_Knob):
    def value(self, *args: Any) -> bool:
        return bool(self._value)


class Unsigned_Knob(Array_Knob):
    pass


class Enumeration_Knob(Unsigned_Knob):
    def __init__(self, name: str, label: str | None = None, values: list[str] | None = None) -> None:
        super().__init__(name, label, (values or [""])[0])
        self._values = list(values or [])

    def values(self) -> list[str]:
        return list(self._values)

    def setValues(self, items: list[str]) -> None:
        current = self._value
        self._values = list(items)
        if current not in self._values:
            self._value = self._values[0] if self._values else ""

    def setValue(self, val: Any, *args: Any) -> bool:
        if isinstance(val, int) and not isinstance(val, bool):
            val = self._values[val]
        if val not in self._values:
            raise ValueError(f"{self._name}: {val!r} is not one of {self._values}")
        self._value = val
        return True

    def enumName(self, n: int) -> str:
        return self._values[n]


class String_Knob(Knob):
    def __init__(self, name: str, label: str | None = None, value: Any = "") -> None:
        super().__init__(name, label, value)

    def getText(self, *args: Any) -> str:
        return str(self._value)

    def setText(self, text: str) -> None:
        self._value = text


class EvalString_Knob(String_Knob):
    def evaluate(self, *args: Any) -> str:
        return str(self._value)


class File_Knob(EvalString_Knob):
    pass


class Text_Knob(Knob):
    pass


class Script_Knob(String_Knob):
    def execute(self) -> None:
        global _this_node
        _this_node = self._node  # type: ignore[attr-defined]
        exec(compile(str(self._value), f"<knob {self._name}>", "exec"), {"nuke": _module()})


class PyScript_Knob(Script_Knob):
    pass


class Tab_Knob(Knob):
    pass


def _module() -> Any:
    import sys

    return sys.modules[__name__]


# -- nodes -------------------------------------------------------------------


class Node(Recorded):
    def __init__(self, node_class: str, knobs: dict[str, Knob] | None = None, inputs: int = 1) -> None:
        self._class = node_class
        self._knobs: dict[str, Knob] = {}
        self._inputs: list[Node | None] = [None] * inputs
        self._x = 0
        self._y = 0
        for knob in (knobs or {}).values():
            self._add(knob)
        self._add(String_Knob("name", "name", _unique_name(node_class)))

    def _add(self, knob: Knob) -> None:
        knob._node = self  # type: ignore[attr-defined]
        self._knobs[knob.name()] = knob

    def Class(self) -> str:
        return self._class

    def name(self) -> str:
        return str(self._knobs["name"].value())

    def fullName(self) -> str:
        return self.name()

    def setName(self, name: str, *args: Any) -> None:
        self._knobs["name"].setValue(name)

    def knob(self, p: str | int, *args: Any) -> Knob | None:
        if isinstance(p, int):
            return list(self._knobs.values())[p]
        return self._knobs.get(p)

    def knobs(self) -> dict[str, Knob]:
        return dict(self._knobs)

    def addKnob(self, knob: Knob) -> None:
        self._add(knob)

    def __getitem__(self, name: str) -> Knob:
        knob = self._knobs.get(name)
        if knob is None:
            raise NameError(f"{self.name()} has no knob named {name}")
        return knob

    def input(self, index: int) -> "Node | None":
        return self._inputs[index] if 0 <= index < len(self._inputs) else None

    def inputs(self) -> int:
        return sum(1 for n in self._inputs if n is not None)

    def maxInputs(self) -> int:
        return len(self._inputs)

    def setInput(self, i: int, node: "Node | None") -> bool:
        if i >= len(self._inputs):
            return False
        self._inputs[i] = node
        return True

    def xpos(self) -> int:
        return self._x

    def ypos(self) -> int:
        return self._y

    def setXYpos(self, x: int, y: int) -> None:
        self._x, self._y = int(x), int(y)

    def screenWidth(self) -> int:
        return 80

    def screenHeight(self) -> int:
        return 18

    def firstFrame(self) -> int:
        if "first" in self._knobs:
            return int(self._knobs["first"].value())
        upstream = self.input(0)
        return upstream.firstFrame() if upstream else int(root()["first_frame"].value())

    def lastFrame(self) -> int:
        if "last" in self._knobs:
            return int(self._knobs["last"].value())
        upstream = self.input(0)
        return upstream.lastFrame() if upstream else int(root()["last_frame"].value())

    def width(self) -> int:
        return int(self._meta().get("input/width", 0))

    def height(self) -> int:
        return int(self._meta().get("input/height", 0))

    def metadata(self, key: str | None = None, *args: Any) -> Any:
        data = self._meta()
        return data if key is None else data.get(key)

    def _meta(self) -> dict[str, Any]:
        if self._class != "Read":
            upstream = self.input(0)
            return upstream._meta() if upstream else {}
        path = filename(self)
        if not path:
            return {}
        frame_path = _frame_file(path, self.firstFrame())
        if not os.path.isfile(frame_path):
            return {}
        from engine.io.exr import read_header

        header = read_header(frame_path)
        return {"input/width": header.display_window.width, "input/height": header.display_window.height,
                "input/filename": frame_path}

    def showControlPanel(self, *args: Any) -> None:
        pass


class Group(Node):
    def begin(self) -> "Group":
        return self

    def end(self) -> None:
        pass

    def nodes(self) -> list[Node]:
        return list(_nodes) if self._class == "Root" else []


class Gizmo(Group):
    pass


class Root(Group):
    pass


_names: dict[str, int] = {}


def _unique_name(node_class: str) -> str:
    _names[node_class] = _names.get(node_class, 0) + 1
    return f"{node_class}{_names[node_class]}"


def _read_knobs() -> dict[str, Knob]:
    knobs: list[Knob] = [File_Knob("file"), Int_Knob("first", value=1), Int_Knob("last", value=1),
                         Int_Knob("origfirst", value=1), Int_Knob("origlast", value=1),
                         Enumeration_Knob("frame_mode", values=["expression", "start at", "offset"]),
                         String_Knob("frame"), String_Knob("colorspace", value="default"),
                         Boolean_Knob("raw", value=False)]
    return {k.name(): k for k in knobs}


def _write_knobs() -> dict[str, Knob]:
    knobs: list[Knob] = [File_Knob("file"), String_Knob("file_type", value="exr"),
                         String_Knob("colorspace", value="default"), Boolean_Knob("raw", value=False),
                         Enumeration_Knob("datatype", values=["16 bit half", "32 bit float"]),
                         Enumeration_Knob("compression", values=["none", "Zip (1 scanline)", "Zip (16 scanlines)",
                                                                 "PIZ Wavelet (32 scanlines)", "RLE", "B44", "B44A",
                                                                 "DWAA", "DWAB"]),
                         Boolean_Knob("write_ACES_compliant_EXR", value=False),
                         Boolean_Knob("create_directories", value=False)]
    return {k.name(): k for k in knobs}


_BUILT_IN: dict[str, tuple[Callable[[], dict[str, Knob]], int]] = {
    "Read": (_read_knobs, 0),
    "Write": (_write_knobs, 1),
    "NoOp": (dict, 1),
    "Dot": (dict, 1),
    "Grade": (dict, 1),
}

_root: Root | None = None


def _make_root() -> Root:
    knobs: list[Knob] = [
        Enumeration_Knob("colorManagement", values=["Nuke", "OCIO"]),
        String_Knob("OCIO_config", value="fn-nuke_cg-config-v1.0.0_aces-v1.3_ocio-v2.1"),
        File_Knob("customOCIOConfigPath"),
        String_Knob("workingSpaceLUT", value="ACEScg"),
        String_Knob("monitorLut", value="sRGB - Display"),
        Int_Knob("first_frame", value=1), Int_Knob("last_frame", value=100), Double_Knob("fps", value=24.0),
    ]
    node = Root("Root", {k.name(): k for k in knobs}, inputs=0)
    node["colorManagement"].setValue("OCIO")
    node.setName("root")
    return node


# -- the gizmo loader ----------------------------------------------------------

_KNOB_TYPES: dict[int, type[Knob]] = {1: String_Knob, 2: File_Knob, 3: Int_Knob, 4: Enumeration_Knob,
                                      6: Boolean_Knob, 7: Double_Knob, 20: Tab_Knob, 22: PyScript_Knob,
                                      26: Text_Knob}
_USER_KNOB = re.compile(r"^\s*addUserKnob\s*\{(\d+)\s+(\w+)(.*)\}\s*$")


def _tcl_words(text: str) -> list[str]:
    """Tcl-ish words: braces and double quotes group."""
    words: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c in "{\"":
            close = "}" if c == "{" else '"'
            depth, j = 1, i + 1
            while j < len(text) and depth:
                if text[j] == "\\" and close == '"':
                    j += 2
                    continue
                if c == "{" and text[j] == "{":
                    depth += 1
                elif text[j] == close:
                    depth -= 1
                j += 1
            word = text[i + 1:j - 1]
            words.append(word.encode().decode("unicode_escape") if close == '"' else word)
            i = j
        else:
            j = i
            while j < len(text) and not text[j].isspace():
                j += 1
            words.append(text[i:j])
            i = j
    return words


def _load_gizmo(path: str) -> Gizmo:
    """Knobs, values and inputs of a .gizmo file (the part of Tcl the Retake gizmo uses)."""
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    if not any(line.strip() in ("Gizmo {", "Group {") for line in lines) or "end_group" not in lines[-1]:
        raise RuntimeError(f"{path}: not a gizmo (needs 'Gizmo {{' ... 'end_group')")
    knobs: dict[str, Knob] = {}
    values: dict[str, str] = {}
    on_create = ""
    inputs = 0
    in_header = False
    for line in lines:
        stripped = line.strip()
        if stripped in ("Gizmo {", "Group {"):
            in_header = True
            continue
        if in_header and stripped == "}":
            in_header = False
            continue
        if stripped.startswith("Input {"):
            inputs += 1
            continue
        if not in_header:
            continue
        match = _USER_KNOB.match(line)
        if match:
            kind, name, rest = int(match.group(1)), match.group(2), match.group(3)
            words = _tcl_words(rest)
            label = words[words.index("l") + 1] if "l" in words else name
            cls = _KNOB_TYPES.get(kind)
            if cls is None:
                raise RuntimeError(f"{path}: knob type {kind} of {name} is not one HOSTS.md lists")
            if cls is Enumeration_Knob:
                knob: Knob = Enumeration_Knob(name, label, _tcl_words(words[words.index("M") + 1]))
            else:
                knob = cls(name, label)
            if cls is PyScript_Knob and "T" in words:
                knob.setValue(words[words.index("T") + 1])
            if cls is Double_Knob and "R" in words:
                r = words.index("R")
                knob._range = (float(words[r + 1]), float(words[r + 2]))  # type: ignore[attr-defined]
            knobs[name] = knob
            continue
        words = _tcl_words(stripped)
        if len(words) == 2 and words[0] in knobs:
            values[words[0]] = words[1]
        elif len(words) == 2 and words[0] == "onCreate":
            on_create = words[1]
    for name, text in values.items():
        knob = knobs[name]
        if isinstance(knob, Boolean_Knob):
            knob.setValue(text == "true")
        elif isinstance(knob, (Int_Knob,)):
            knob.setValue(int(text))
        elif isinstance(knob, Double_Knob):
            knob.setValue(float(text))
        elif not isinstance(knob, PyScript_Knob):
            knob.setValue(text)
    gizmo = Gizmo(os.path.splitext(os.path.basename(path))[0], knobs, inputs=max(inputs, 1))
    gizmo._on_create = on_create  # type: ignore[attr-defined]
    return gizmo


# -- module functions ------------------------------------------------------------


@api
def root() -> Root:
    global _root
    if _root is None:
        _root = _make_root()
    return _root


@api
def pluginAddPath(path: str, addToSysPath: bool = True) -> None:
    import sys

    if path not in _plugin_paths:
        _plugin_paths.insert(0, path)
    if addToSysPath and path not in sys.path:
        sys.path.insert(0, path)


def _find_gizmo(node_class: str) -> str | None:
    for folder in _plugin_paths + [p for p in os.environ.get("NUKE_PATH", "").split(os.pathsep) if p]:
        candidate = os.path.join(folder, node_class + ".gizmo")
        if os.path.isfile(candidate):
            return candidate
    return None


def _new_node(node_class: str, knob_values: dict[str, Any]) -> Node:
    _require_main_thread(f"creating a {node_class} node")
    if node_class in _BUILT_IN:
        make, inputs = _BUILT_IN[node_class]
        node = Node(node_class, make(), inputs=inputs)
    else:
        gizmo = _find_gizmo(node_class)
        if gizmo is None:
            raise RuntimeError(f"Unknown command {node_class}")
        node = _load_gizmo(gizmo)
    for name, value in knob_values.items():
        if name == "name":
            node.setName(value)
        else:
            node[name].setValue(value)
    _nodes.append(node)
    script = getattr(node, "_on_create", "")
    if script:
        global _this_node
        _this_node = node
        exec(compile(script, f"<{node_class}.onCreate>", "exec"), {"nuke": _module()})
    return node


@api
def createNode(typ: str, knobs: str = "", inpanel: bool = True) -> Node:
    values = dict(zip(_tcl_words(knobs)[::2], _tcl_words(knobs)[1::2])) if knobs else {}
    return _new_node(typ, values)


class _Nodes:
    """``nuke.nodes.Read(file=...)``: create a node without attaching it to the selection."""

    def __getattr__(self, node_class: str) -> Callable[..., Node]:
        if node_class.startswith("_"):
            raise AttributeError(node_class)

        def make(**knob_values: Any) -> Node:
            from _recording import CALLS

            CALLS.append(("nodes", node_class, (), dict(knob_values)))
            return _new_node(node_class, knob_values)

        return make


nodes = _Nodes()


@api
def toNode(s: str) -> Node | None:
    if s == "root":
        return root()
    return next((n for n in _nodes if n.name() == s), None)


@api
def allNodes(filter: str | None = None, group: Any = None) -> list[Node]:
    return [n for n in _nodes if filter is None or n.Class() == filter]


@api
def thisNode() -> Node:
    if _this_node is None:
        raise ValueError("nuke.thisNode() outside a knob callback")
    return _this_node


@api
def delete(n: Node | None) -> None:
    _require_main_thread("deleting a node")
    if n in _nodes:
        _nodes.remove(n)
    for other in _nodes:
        other._inputs = [None if i is n else i for i in other._inputs]


def _frame_file(pattern: str, frame: int) -> str:
    if "#" in pattern:
        return re.sub(r"#+", lambda m: f"{frame:0{len(m.group(0))}d}", pattern, count=1)
    match = re.search(r"%0?(\d*)d", pattern)
    if match:
        return pattern.replace(match.group(0), f"{frame:0{int(match.group(1) or 0)}d}", 1)
    return pattern


@api
def filename(node: Node, i: int = 0) -> str | None:
    knob = node.knob("file")
    if knob is None or not knob.value():
        return None
    return os.path.expandvars(str(knob.value()))


def _upstream_read(node: Node | None) -> Node | None:
    while node is not None and node.Class() != "Read":
        node = node.input(0)
    return node


def _nuke_space(knob_value: str) -> str:
    """A Read/Write colorspace knob value as the OCIO name the (studio/cg) config knows."""
    match = re.fullmatch(r"default \((.+)\)", knob_value)
    if knob_value == "default":
        return str(root()["workingSpaceLUT"].value())
    return match.group(1) if match else knob_value


@api
def execute(nameOrNode: Node | str, start: int, end: int, incr: int = 1, views: Any = None,
            continueOnError: bool = False) -> None:
    """Render a Write: each frame of its upstream Read, in the script's working space, to its file."""
    node = toNode(nameOrNode) if isinstance(nameOrNode, str) else nameOrNode
    if node is None or node.Class() != "Write":
        raise RuntimeError(f"{nameOrNode}: execute needs a Write node")
    read = _upstream_read(node.input(0))
    if read is None:
        raise RuntimeError(f"{node.name()}: nothing to render (no Read upstream)")
    from engine.colour import Colour
    from engine.io.aces_exr import write_exr
    from engine.io.exr import read_image

    colour = Colour()
    working = str(root()["workingSpaceLUT"].value())
    for frame in range(int(start), int(end) + 1, int(incr)):
        source = _frame_file(filename(read) or "", frame)
        if not os.path.isfile(source):
            raise RuntimeError(f"Read1: {source}: No such file or directory")
        pixels = read_image(source)[..., :3]
        if not read["raw"].value():
            pixels = colour.convert(pixels, _nuke_space(str(read["colorspace"].value())), working)
        if not node["raw"].value():
            pixels = colour.convert(pixels, working, _nuke_space(str(node["colorspace"].value())))
        target = _frame_file(filename(node) or "", frame)
        if node["create_directories"].value():
            os.makedirs(os.path.dirname(target), exist_ok=True)
        write_exr(target, pixels, chromaticities=None, aces_container=False, frame=frame)


@api
def executeInMainThread(call: Callable[..., Any], args: tuple = (), kwargs: dict | None = None) -> None:
    _main_queue.put((call, tuple(args) if isinstance(args, (tuple, list)) else (args,), kwargs or {}, None))


@api
def executeInMainThreadWithResult(call: Callable[..., Any], args: tuple = (), kwargs: dict | None = None) -> Any:
    args = tuple(args) if isinstance(args, (tuple, list)) else (args,)
    if _on_main_thread():
        return call(*args, **(kwargs or {}))
    reply: queue.Queue = queue.Queue()
    _main_queue.put((call, args, kwargs or {}, reply))
    ok, value = reply.get()
    if not ok:
        raise value
    return value


def _pump(timeout: float = 0.05) -> int:
    """Run what worker threads queued for the main thread (Nuke's event loop does this)."""
    _require_main_thread("_pump")
    ran = 0
    try:
        item = _main_queue.get(timeout=timeout)
    except queue.Empty:
        return 0
    while True:
        call, args, kwargs, reply = item
        try:
            value = call(*args, **kwargs)
            if reply is not None:
                reply.put((True, value))
        except Exception as error:  # noqa: BLE001 - handed back to the waiting thread
            if reply is None:
                raise
            reply.put((False, error))
        ran += 1
        try:
            item = _main_queue.get_nowait()
        except queue.Empty:
            return ran


class ProgressTask(Recorded):
    def __init__(self, *args: Any) -> None:
        from _recording import CALLS

        CALLS.append(("ProgressTask", "__init__", args, {}))
        self._title = args[0] if args else ""
        self._progress = 0
        self._message = ""
        self._cancelled = False
        self._history: list[int] = []
        _progress_tasks.append(self)

    def setProgress(self, *args: Any) -> None:
        self._progress = int(args[0])
        self._history.append(self._progress)

    def setMessage(self, *args: Any) -> None:
        self._message = str(args[0])

    def isCancelled(self, *args: Any) -> bool:
        return self._cancelled

    def _cancel(self) -> None:
        self._cancelled = True


_current_frame = 1


@api
def frame(f: int | None = None) -> int:
    """The viewer's current frame; ``frame(f)`` moves it."""
    global _current_frame
    if f is not None:
        _current_frame = int(f)
    return _current_frame


@api
def message(prompt: str) -> None:
    _messages.append(prompt)


class Menu(Recorded):
    def __init__(self, name: str) -> None:
        self._name = name
        self._items: dict[str, Any] = {}

    def name(self) -> str:
        return self._name

    def addMenu(self, *args: Any, **kwargs: Any) -> "Menu":
        sub = self._items.get(args[0])
        if not isinstance(sub, Menu):
            sub = Menu(args[0])
            self._items[args[0]] = sub
        return sub

    def addCommand(self, *args: Any, **kwargs: Any) -> None:
        self._items[args[0]] = (args[1] if len(args) > 1 else kwargs.get("command"), kwargs)

    def findItem(self, name: str) -> Any:
        item: Any = self
        for part in name.split("/"):
            if not isinstance(item, Menu) or part not in item._items:
                return None
            item = item._items[part]
        return item


class ToolBar(Menu):
    pass


@api
def menu(name: str) -> Menu:
    _require_main_thread("nuke.menu")
    return _menus.setdefault(name, Menu(name))


@api
def toolbar(name: str, create: bool = True) -> ToolBar | None:
    if name not in _toolbars and create:
        _toolbars[name] = ToolBar(name)
    return _toolbars.get(name)


def _reset() -> None:
    """A new, empty script (tests only)."""
    global _root, _this_node
    _nodes.clear()
    _names.clear()
    _root = None
    _this_node = None
    _messages.clear()
    _menus.clear()
    _toolbars.clear()
    _progress_tasks.clear()
    while not _main_queue.empty():
        _main_queue.get_nowait()
