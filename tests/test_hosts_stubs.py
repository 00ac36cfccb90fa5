"""The fakes and the adapters against the published API stubs: ``types-nuke`` (Nuke 13.2) and
``fusionscript-stubs`` (Resolve 21.0), installed by the ``test`` extra.

Two checks, so that neither the fakes nor the adapters can drift from the real signatures:

* every public method a fake defines exists, under the same class name, in the stubs;
* every call the adapters make into a fake (recorded while they read a plate, keyframes and
  colour, render keyframe images, run a render and put the result back) binds to the stub's
  signature of that class and method (any overload).

What the stubs do not cover is listed below with the reason, and nothing else is exempt.
"""
from __future__ import annotations

import ast
import inspect
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.scenes import REPO, use_fakes, write_acescg_plate, write_painted_keys
from tests.fakes.scenes import no_engine_left_behind  # noqa: F401 - autouse: kills engines a failed test left

use_fakes()
import _recording  # noqa: E402 - from tests/fakes
import DaVinciResolveScript as dvr  # noqa: E402
import nuke  # noqa: E402
import nukescripts  # noqa: E402

# Calls outside the stubs, with why each is still right.
NOT_IN_STUBS = {
    (None, "scriptapp"): "DaVinciResolveScript.scriptapp is the scripting module's entry (HOSTS.md); "
                         "fusionscript-stubs types the objects it returns",
    (None, "registerWidgetAsPanel"): "nukescripts has no published stubs; HOSTS.md documents the call",
    (None, "pluginAddPath"): "types-nuke comments it out (its overloads did not type-check); HOSTS.md documents it",
}
# Parameters the stubs declare without a default although the API documents them as optional.
OPTIONAL_IN_API = {
    ("Timeline", "AddTrack"): "subTrackType applies to audio tracks only (the stub's own docstring says optional)",
}


class Stubs:
    """Classes (with their bases) and functions of a stub package, parsed from its .pyi files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.classes: dict[str, tuple[list[str], dict[str, list[ast.FunctionDef]], set[str]]] = {}
        self.functions: dict[str, list[ast.FunctionDef]] = {}
        self.names: set[str] = set()
        for path in sorted(folder.rglob("*.pyi")):
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                if isinstance(node, ast.ClassDef):
                    bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
                    _, methods, attributes = self.classes.setdefault(node.name, (bases, {}, set()))
                    for item in node.body:
                        if isinstance(item, ast.FunctionDef):
                            methods.setdefault(item.name, []).append(item)
                        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                            attributes.add(item.target.id)
                elif isinstance(node, ast.FunctionDef):
                    self.functions.setdefault(node.name, []).append(node)
                elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                    self.names.add(node.target.id)

    def method(self, cls: str, name: str) -> list[ast.FunctionDef]:
        """The definitions of ``cls.name``, looked up through the stub's base classes."""
        seen: set[str] = set()
        todo = [cls]
        while todo:
            current = todo.pop(0)
            if current in seen or current not in self.classes:
                continue
            seen.add(current)
            bases, methods, _ = self.classes[current]
            if name in methods:
                return methods[name]
            todo += bases
        return []


def _stub_folder(distribution: str, folder: str) -> Path:
    for file in metadata.files(distribution) or []:
        if file.parts[0] == folder and file.name.endswith(".pyi"):
            return Path(file.locate()).parent
    raise AssertionError(f"{distribution} is not installed: pip install -e '.[test]'")


@pytest.fixture(scope="module")
def nuke_stubs() -> Stubs:
    return Stubs(_stub_folder("types-nuke", "nuke-stubs"))


@pytest.fixture(scope="module")
def resolve_stubs() -> Stubs:
    return Stubs(_stub_folder("fusionscript-stubs", "fusionscript-stubs"))


def _signature(fn: ast.FunctionDef, method: bool) -> inspect.Signature:
    a = fn.args
    params: list[inspect.Parameter] = []
    positional = a.posonlyargs + a.args
    defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    decorators = {d.id for d in fn.decorator_list if isinstance(d, ast.Name)}
    skip_self = method and "staticmethod" not in decorators
    for i, (arg, default) in enumerate(zip(positional, defaults)):
        if skip_self and i == 0:
            continue
        kind = inspect.Parameter.POSITIONAL_ONLY if arg in a.posonlyargs else inspect.Parameter.POSITIONAL_OR_KEYWORD
        params.append(inspect.Parameter(arg.arg, kind, default=inspect.Parameter.empty if default is None else ...))
    if a.vararg:
        params.append(inspect.Parameter(a.vararg.arg, inspect.Parameter.VAR_POSITIONAL))
    for arg, default in zip(a.kwonlyargs, a.kw_defaults):
        params.append(inspect.Parameter(arg.arg, inspect.Parameter.KEYWORD_ONLY,
                                        default=inspect.Parameter.empty if default is None else ...))
    if a.kwarg:
        params.append(inspect.Parameter(a.kwarg.arg, inspect.Parameter.VAR_KEYWORD))
    return inspect.Signature(params)


def _binds(defs: list[ast.FunctionDef], args: tuple, kwargs: dict, method: bool, partial: bool) -> bool:
    for fn in defs:
        signature = _signature(fn, method)
        try:
            (signature.bind_partial if partial else signature.bind)(*args, **kwargs)
            return True
        except TypeError:
            continue
    return False


def _fake_classes(module: Any) -> list[type]:
    return [value for name, value in vars(module).items()
            if isinstance(value, type) and not name.startswith("_") and value.__module__ == module.__name__
            and issubclass(value, _recording.Recorded)]


@pytest.mark.parametrize("fake, stubs_fixture", [(nuke, "nuke_stubs"), (dvr, "resolve_stubs")])
def test_every_method_of_the_fakes_exists_in_the_stubs(fake: Any, stubs_fixture: str,
                                                       request: pytest.FixtureRequest) -> None:
    stubs: Stubs = request.getfixturevalue(stubs_fixture)
    missing: list[str] = []
    for cls in _fake_classes(fake):
        if cls.__name__ not in stubs.classes:
            missing.append(f"class {cls.__name__}")
            continue
        for name, value in inspect.getmembers(cls, inspect.isfunction):
            if not name.startswith("_") and not stubs.method(cls.__name__, name):
                missing.append(f"{cls.__name__}.{name}")
    for name, value in vars(fake).items():
        if callable(getattr(value, "__wrapped__", None)) and (None, name) not in NOT_IN_STUBS \
                and name not in stubs.functions:
            missing.append(f"function {name}")
    assert not missing, f"the fake {fake.__name__} has API the stubs do not: {missing}"


def _drive_nuke(tmp: Path) -> None:
    """Everything the Nuke adapter does, on a 4-frame plate: start-up, read, render, put back."""
    from plugin.hosts import nuke as nuke_host

    nuke._reset()
    nuke.pluginAddPath(str(REPO / "nuke_gizmos"))
    for name in ("init.py", "menu.py"):
        path = REPO / "nuke_gizmos" / name
        exec(compile(path.read_text(), str(path), "exec"), {"__file__": str(path), "__name__": "__main__"})
    plate = write_acescg_plate(tmp / "plate", last=1004, width=32, height=18)
    paint = write_painted_keys(tmp / "paint", [1001], width=32, height=18)
    read = nuke.nodes.Read(file=plate, first=1001, last=1004, colorspace="ACEScg")
    node = nuke.createNode("Retake")
    node.setInput(0, read)
    node.setInput(1, nuke.nodes.Read(file=paint, first=1001, last=1001, colorspace="default (ACEScg)"))
    node["keyframe"].setValueAt(1.0, 1001)
    node["transform_params"].setValue("flow=dis")
    nuke_host.NukeHost(node).current_frame()
    render = nuke_host.render_node(node)
    assert render is not None
    deadline = time.monotonic() + 60
    while render.running() and time.monotonic() < deadline:
        nuke._pump()
    nuke._pump()
    assert render.state == "done", render.message


def _drive_resolve(tmp: Path) -> None:
    """Everything the Resolve adapter does: connect, read clip/markers/colour, import and place."""
    from plugin.hosts import resolve as resolve_host
    from plugin.hosts.base import OutputPlate

    plate = write_acescg_plate(tmp / "rplate", last=1004, width=32, height=18)
    out = write_acescg_plate(tmp / "rout", last=1004, width=32, height=18, name="out")
    project = dvr.Project()
    timeline = dvr.Timeline()
    project._timeline = timeline
    (clip,) = project.GetMediaPool().ImportMedia([{"FilePath": plate.replace("####", "%04d"), "StartIndex": 1001,
                                                    "EndIndex": 1004}])
    timeline._place(1, dvr.TimelineItem(clip, 86400, 4, 0))
    timeline.AddMarker(1, "Blue", "key", "dusk", 1, "")
    dvr._launch(dvr.Resolve(project))
    try:
        host = resolve_host.ResolveHost()
        plate_ref = host.plate()
        host.keyframes()
        host.colour()
        host.put_back(OutputPlate(out, plate_ref.first, plate_ref.last))
    finally:
        dvr._launch(None)


def test_every_call_the_adapters_make_binds_to_the_stub_signatures(nuke_stubs: Stubs, resolve_stubs: Stubs,
                                                                    tmp_path: Path) -> None:
    _recording.CALLS.clear()
    _drive_nuke(tmp_path)
    nuke_calls = list(_recording.CALLS)
    _recording.CALLS.clear()
    _drive_resolve(tmp_path)
    resolve_calls = list(_recording.CALLS)
    assert len(nuke_calls) > 50 and len(resolve_calls) > 20
    problems: list[str] = []
    checked: set[str] = set()
    for stubs, calls in ((nuke_stubs, nuke_calls), (resolve_stubs, resolve_calls)):
        for owner, name, args, kwargs in calls:
            label = f"{owner or 'module'}.{name}"
            checked.add(label)
            if (owner, name) in NOT_IN_STUBS:
                continue
            if owner == "nodes":  # nuke.nodes.Read(...): node constructors take knob values by name
                if "nodes" not in stubs.names:
                    problems.append("nuke.nodes")
                continue
            defs = stubs.functions.get(name, []) if owner is None else stubs.method(owner, name)
            if not defs:
                problems.append(f"{label}: not in the stubs")
            elif not _binds(defs, args, kwargs, method=owner is not None, partial=(owner, name) in OPTIONAL_IN_API):
                shown = ", ".join([repr(a)[:30] for a in args] + [f"{k}=…" for k in kwargs])
                problems.append(f"{label}({shown}) does not bind to {ast.unparse(defs[0].args)}")
    assert not problems, "\n".join(sorted(set(problems)))
    # The calls HOSTS.md names really were exercised (a drive that skipped them would check nothing).
    for label in ("Gizmo.input", "Node.Class", "Double_Knob.animation", "Node.setXYpos", "AnimationCurve.keys", "module.execute", "module.filename",
                  "ProgressTask.setProgress", "module.executeInMainThreadWithResult", "Timeline.GetMarkers",
                  "Timeline.AddTrack", "MediaPool.ImportMedia", "MediaPool.AppendToTimeline",
                  "TimelineItem.GetLeftOffset", "MediaPoolItem.GetClipProperty", "Project.GetSetting"):
        assert label in checked, f"{label} was never called"


def test_a_wrong_call_is_caught(nuke_stubs: Stubs, resolve_stubs: Stubs) -> None:
    """The check can fail: extra arguments and unknown methods do not bind."""
    assert not _binds(resolve_stubs.method("Timeline", "GetItemListInTrack"), ("video",), {}, True, False)
    assert not _binds(nuke_stubs.functions["createNode"], ("Read", "", True, "extra"), {}, False, False)
    assert not resolve_stubs.method("Timeline", "GetClips")
    assert _binds(resolve_stubs.method("TimelineItem", "GetStart"), (False,), {}, True, False)
