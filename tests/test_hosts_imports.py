"""The import rules of DESIGN.md: hosts -> panel -> engine, and a host side that needs only the
standard library (Nuke's and Resolve's Python have no numpy, torch, OpenImageIO or OpenColorIO)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# What runs inside a host's Python without Qt: the adapters, the job builder, the engine process.
HOST_SIDE = ["plugin.hosts.nuke", "plugin.hosts.resolve", "plugin.jobs", "plugin.engine_process", "plugin.install",
             "plugin.commands"]
HEAVY = ["numpy", "torch", "OpenImageIO", "PyOpenColorIO", "OpenEXR", "av", "cv2", "PySide6", "fileseq"]


@pytest.mark.parametrize("module", HOST_SIDE)
def test_the_host_side_imports_with_the_standard_library_only(module: str) -> None:
    blocker = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {HEAVY!r}:\n"
        "            raise ImportError(f'{name} is not available in a host Python')\n"
        "sys.meta_path.insert(0, Block())\n"
        f"import {module}\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", blocker], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_engine_never_imports_the_host_layer_or_qt() -> None:
    offenders = {str(p.relative_to(REPO)): sorted(_imports(p) & {"plugin", "PySide6", "PySide2", "nuke",
                                                                   "DaVinciResolveScript"})
                 for p in (REPO / "engine").rglob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}


def test_the_host_entry_points_only_reach_into_plugin() -> None:
    for path in [REPO / "nuke_gizmos" / "init.py", REPO / "nuke_gizmos" / "menu.py", REPO / "resolve_scripts" / "Retake.py"]:
        assert _imports(path) <= {"os", "sys", "nuke", "nukescripts", "plugin"}, path
