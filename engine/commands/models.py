"""``retake models``: which analysis models are present, where, and whether they verify;
``--install`` fetches and verifies them (``./setup.sh`` runs it).

Imports nothing heavy: ``engine.analysis.models`` uses only the standard library.
"""
from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("models", help="list the analysis models (faces, masks, pose) and install them")
    parser.add_argument("--install", action="store_true",
                        help="fetch the models into the per-user cache and verify them (fast when already there)")
    parser.add_argument("--from-wheel", metavar="WHEEL",
                        help="with --install: take the files from this local copy of mediapipe-0.10.21-*.whl")
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from engine.analysis.models import install_models, model_status, models_dir

    statuses = install_models(args.from_wheel) if args.install else model_status()
    folder, why = models_dir()
    if args.json:
        print(json.dumps({"folder": str(folder), "from": why,
                          "models": [{"name": s.spec.name, "file": s.spec.file, "path": str(s.path), "state": s.state,
                                      "detail": s.detail, "sha256": s.spec.sha256, "size": s.spec.size}
                                     for s in statuses]}, indent=2))
    else:
        print(f"models folder: {folder} ({why})")
        for s in statuses:
            print(f"  {s.state:8s} {s.spec.name:30s} {s.path}  ({s.detail})")
    bad = [s for s in statuses if s.state != "ok"]
    if bad:
        print(f"retake models: {len(bad)} model(s) not usable; run `retake models --install`"
              + (" or fix the files in $RETAKE_MODELS" if why == "$RETAKE_MODELS" else ""))
        return 2
    return 0
