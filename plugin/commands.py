"""``retake panel``, ``retake install-nuke``, ``retake install-resolve``.

Declared as ``retake.commands`` entry points in pyproject.toml, so the engine's CLI finds
them without importing ``plugin`` by name. Nothing heavy at import: every ``retake`` call
imports this module; PySide6 is imported only when the panel opens.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register_panel(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("panel", help="open the Retake panel in its own window (standalone or on Resolve)")
    parser.add_argument("plate", nargs="?", help="a plate to open (frame pattern, one frame, or a movie)")
    parser.add_argument("--colorspace", help="the plate's OCIO colour space (default: what the file says)")
    parser.add_argument("--host", choices=("standalone", "resolve"), default="standalone",
                        help="resolve: drive a running Resolve Studio through its scripting API")
    parser.set_defaults(func=_cmd_panel)


def register_install_nuke(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("install-nuke", help="add Retake's node and panel to Nuke (your ~/.nuke/init.py)")
    parser.add_argument("--dest", type=Path, help="the Nuke user folder (default ~/.nuke)")
    parser.add_argument("--dry-run", action="store_true", help="say what would be written, write nothing")
    parser.set_defaults(func=_cmd_install_nuke)


def register_install_resolve(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("install-resolve", help="add Retake to Resolve's Workspace > Scripts menu")
    parser.add_argument("--dest", type=Path, help="the Fusion/Scripts/Utility folder (default: the per-user one)")
    parser.add_argument("--dry-run", action="store_true", help="say what would be written, write nothing")
    parser.set_defaults(func=_cmd_install_resolve)


def _cmd_panel(args: argparse.Namespace) -> int:
    from PySide6.QtWidgets import QApplication

    from plugin.hosts.base import Host
    from plugin.panel import RetakePanel

    app = QApplication.instance() or QApplication(sys.argv[:1])
    host: Host
    if args.host == "resolve":
        from plugin.hosts.resolve import ResolveHost

        host = ResolveHost()
    else:
        from plugin.hosts.standalone import StandaloneHost

        host = StandaloneHost(args.plate, args.colorspace)
    panel = RetakePanel(host)
    panel.resize(1180, 760)
    if args.host == "resolve" or args.plate:
        panel.load_from_host()
    panel.show()
    return int(app.exec())


def _report(lines: list[str], after: list[str]) -> int:
    for line in lines + after:
        print(line)
    return 0


def _cmd_install_nuke(args: argparse.Namespace) -> int:
    from plugin.install import REPO, apply, nuke_steps

    lines = apply(nuke_steps(args.dest), args.dry_run)
    return _report(lines, [
        f"Nuke will load Retake from {REPO / 'nuke_gizmos'} (RETAKE_HOME={REPO}).",
        "Restart Nuke: Nodes toolbar > Retake > Retake (or Tab, 'Retake'); the docked panel is under "
        "Pane menus > Retake. For render farms, add the same folder to NUKE_PATH instead.",
    ])


def _cmd_install_resolve(args: argparse.Namespace) -> int:
    from plugin.install import REPO, apply, resolve_steps

    lines = apply(resolve_steps(args.dest), args.dry_run)
    return _report(lines, [
        f"Resolve will run {REPO / 'resolve_scripts' / 'Retake.py'} (RETAKE_HOME={REPO}).",
        "Restart Resolve (Studio: menu scripts need it): Workspace > Scripts > Retake. Without PySide6 in the "
        "Python Resolve uses, the panel opens in its own window from Retake's environment.",
    ])
