"""Put Retake's host entry points where Nuke and Resolve look for them (``retake install-*``).

Nuke: a marked block in the user's ``~/.nuke/init.py`` that sets ``RETAKE_HOME`` and adds
this checkout's ``nuke_gizmos`` to the plugin path (so the gizmo, ``init.py`` and
``menu.py`` are used in place and update with the checkout). Resolve: a small
``Retake.py`` in the Scripts ``Utility`` folder that runs this checkout's
``resolve_scripts/Retake.py`` with the ``app`` Resolve hands it. Both are idempotent:
running again replaces what an earlier run wrote. Standard library only.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEGIN = "# >>> retake >>>"
END = "# <<< retake <<<"


@dataclass(frozen=True)
class InstallStep:
    path: Path
    action: str  # "create", "update", "append"
    text: str


def nuke_dir() -> Path:
    """Nuke's per-user folder: ``~/.nuke`` (Windows: ``%USERPROFILE%\\.nuke``)."""
    return Path.home() / ".nuke"


def resolve_scripts_dir() -> Path:
    """The Scripts ``Utility`` folder for Workspace > Scripts (per user on Linux; HOSTS.md folders elsewhere)."""
    if sys.platform == "darwin":
        return Path("/Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion/Scripts/Utility")
    if sys.platform == "win32":
        base = os.environ.get("PROGRAMDATA", r"C:\ProgramData")
        return Path(base) / "Blackmagic Design" / "DaVinci Resolve" / "Fusion" / "Scripts" / "Utility"
    return Path.home() / ".local" / "share" / "DaVinciResolve" / "Fusion" / "Scripts" / "Utility"


def _with_block(existing: str, block: str) -> tuple[str, str]:
    """``existing`` with the Retake block replaced (or appended); and which it was."""
    if BEGIN in existing and END in existing:
        head, _, rest = existing.partition(BEGIN)
        _, _, tail = rest.partition(END)
        return head + block + tail, "update"
    separator = "" if not existing or existing.endswith("\n") else "\n"
    return existing + separator + ("\n" if existing else "") + block + "\n", "append" if existing else "create"


def nuke_steps(dest: Path | None = None, home: Path = REPO) -> list[InstallStep]:
    folder = dest or nuke_dir()
    init = folder / "init.py"
    block = "\n".join([
        BEGIN,
        "# Added by `retake install-nuke`: Retake's node, menu and panel from this checkout.",
        "import os",
        "import nuke",
        f"os.environ.setdefault('RETAKE_HOME', {str(home)!r})",
        f"nuke.pluginAddPath({str(home / 'nuke_gizmos')!r})",
        END,
    ])
    existing = init.read_text(encoding="utf-8") if init.is_file() else ""
    text, action = _with_block(existing, block)
    return [InstallStep(init, action, text)]


def resolve_steps(dest: Path | None = None, home: Path = REPO) -> list[InstallStep]:
    folder = dest or resolve_scripts_dir()
    script = folder / "Retake.py"
    text = "\n".join([
        '"""Retake (Workspace > Scripts > Retake). Written by `retake install-resolve`; it runs the',
        'checkout\'s resolve_scripts/Retake.py with the `app` Resolve hands to menu scripts."""',
        "import os",
        "",
        f"RETAKE_HOME = os.environ.get('RETAKE_HOME') or {str(home)!r}",
        "os.environ['RETAKE_HOME'] = RETAKE_HOME",
        "_entry = os.path.join(RETAKE_HOME, 'resolve_scripts', 'Retake.py')",
        "with open(_entry, encoding='utf-8') as _file:",
        "    exec(compile(_file.read(), _entry, 'exec'), globals())",
        "",
    ])
    return [InstallStep(script, "update" if script.exists() else "create", text)]


def apply(steps: list[InstallStep], dry_run: bool) -> list[str]:
    """Write the steps (unless ``dry_run``); lines saying what was (or would be) done."""
    lines: list[str] = []
    for step in steps:
        verb = {"create": "create", "update": "update", "append": "append Retake's block to"}[step.action]
        lines.append(f"{'would ' if dry_run else ''}{verb} {step.path}")
        if not dry_run:
            step.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = step.path.with_name(step.path.name + ".retake-tmp")
            tmp.write_text(step.text, encoding="utf-8")
            os.replace(tmp, step.path)
    return lines
