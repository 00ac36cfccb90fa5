"""``retake``: the command line over the engine, for artists, pipelines and farms.

Exit codes: 0 ok, 2 bad input (the message says the file, the frame and what to
do), 1 internal error, 130 cancelled. Heavy modules (torch, OpenImageIO) are
imported only by the commands that need them, so ``retake validate`` and
``retake info`` start fast.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import traceback
from typing import Any, Sequence

from engine import __version__
from engine.errors import InputError, RetakeError
from engine.heap import keep_freed_memory


def _parse_frames(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(-?\d+)\s*(?:-\s*(-?\d+))?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a frame range such as 1001-1050")
    first = int(match.group(1))
    return first, int(match.group(2)) if match.group(2) is not None else first


def _non_negative(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 0 or more")
    return int(text)


class _Bar:
    """A one-line progress bar on stderr with frames/s and ETA."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.tty = stream.isatty()

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "start":
            print(f"retake: {event['total']} frame(s) {event['frames'][0]}-{event['frames'][1]} on {event['device']}, "
                  f"{event['size'][0]}x{event['size'][1]} -> {event['output']}\n"
                  f"        {event['writes']}", file=self.stream)
        elif kind == "warning":
            print(f"\nwarning: {event['message']}", file=self.stream)
        elif kind == "frame":
            done, total = event["done"], event["total"]
            width = 30
            filled = int(width * done / total)
            eta = "--" if event["eta_s"] is None else f"{event['eta_s']:.0f}s"
            line = (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} frame {event['frame']}"
                    f"{' (done before)' if event['skipped'] else ''}  {event['fps']:.2f} frames/s  ETA {eta}")
            if self.tty:
                print("\r" + line, end="", file=self.stream, flush=True)
            elif done == total or done % 10 == 0:
                print(line, file=self.stream)
        elif kind == "done":
            if self.tty:
                print(file=self.stream)
            print(f"retake: {event['rendered']} rendered, {event['skipped']} already complete, "
                  f"{event['seconds']:.1f}s -> {event['output']}", file=self.stream)


def _json_progress(event: dict[str, Any]) -> None:
    print(json.dumps(event), flush=True)


def _cmd_run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from engine.campaign import load_jobs, run_campaign
    from engine.pipeline import RunOptions

    jobs = load_jobs(args.job)
    if args.sanitize:
        jobs = [(name, replace(job, plate=replace(job.plate, nonfinite="sanitize"))) for name, job in jobs]
    cancel = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        # Finish nothing half-way: the loop stops before the next frame.
        cancel.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    progress = {"json": _json_progress, "bar": _Bar(sys.stderr), "none": None}[args.progress]
    options = RunOptions(frames=args.frames, device=args.device, draft=args.draft, progress=progress, cancel=cancel,
                         write_threads=args.write_threads)

    def on_variant(name: str | None, index: int, total: int) -> None:
        if name is None:
            return
        if args.progress == "json":
            _json_progress({"event": "variant", "name": name, "index": index, "total": total})
        elif args.progress == "bar":
            print(f"retake: variant {index + 1}/{total}: {name}", file=sys.stderr)

    sheet = None
    if jobs[0][0] is not None:   # a campaign: a summary of its variants where their outputs are
        folder = os.path.commonpath([os.path.dirname(os.path.abspath(job.output.path)) for _, job in jobs])
        sheet = os.path.join(folder, os.path.splitext(os.path.basename(args.job))[0] + ".campaign.png")
    run_campaign(jobs, options, extra_inputs=[os.path.abspath(args.job)], on_variant=on_variant, sheet=sheet)
    if sheet and os.path.exists(sheet) and args.progress != "json":
        print(f"retake: campaign contact sheet -> {sheet}", file=sys.stderr)
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from engine.campaign import load_jobs
    from engine.job import job_hash

    for name, job in load_jobs(args.job):
        what = f"variant {name!r}" if name else "valid job"
        print(f"{args.job}: {what} (version {job.version}, transform {job.transform.name}, "
              f"{len(job.keyframes)} keyframe(s), hash {job_hash(job)[:12]}) -> {job.output.path}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from engine.io.describe import describe_plate, format_description
    from engine.io.plates import open_plate

    with open_plate(args.path, first=args.first, last=args.last, part=args.part, view=args.view) as plate:
        description = describe_plate(plate.info)
        if args.check:
            description["check"] = _check_frames(plate)
    print(json.dumps(description, indent=2) if args.json else format_description(description))
    if args.check and description["check"]["problems"]:
        return 2
    return 0


def _check_frames(plate: Any) -> dict[str, Any]:
    """Decode every present frame: what a TD runs before sending a plate to the farm."""
    import numpy as np

    problems: list[str] = []
    missing = set(plate.info.missing)
    checked = 0
    for frame in range(plate.info.first, plate.info.last + 1):
        if frame in missing:
            continue
        try:
            pixels = plate.read(frame)
        except InputError as error:
            problems.append(str(error))
            continue
        checked += 1
        nan = int(np.isnan(pixels).sum())
        inf = int(np.isinf(pixels).sum())
        if nan or inf:
            problems.append(f"{plate.frame_path(frame) or plate.info.path} (frame {frame}): {nan} NaN and {inf} Inf "
                            "pixel values")
    return {"frames_decoded": checked, "problems": problems}


def _cmd_schema(args: argparse.Namespace) -> int:
    from engine.job import JOB_SCHEMA

    print(json.dumps(JOB_SCHEMA, indent=2))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from engine.demo import run_demo

    run_demo(args.out, frames=args.frames, device=args.device, progress=_Bar(sys.stderr))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retake", description="Directed transformation of shot footage.")
    parser.add_argument("--version", action="version", version=f"retake {__version__}")
    parser.add_argument("--debug", action="store_true", help="print a traceback for internal errors")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="render a job spec")
    run.add_argument("job", help="the job file (JSON)")
    run.add_argument("--draft", action="store_true", help="render at 360 lines, whatever the job says")
    run.add_argument("--device", default="auto", choices=("auto", "cuda", "mps", "cpu"))
    run.add_argument("--frames", type=_parse_frames, metavar="FIRST-LAST", help="render only this chunk (farm)")
    run.add_argument("--progress", default="bar", choices=("bar", "json", "none"),
                     help="bar on stderr, one JSON object per line on stdout (for hosts), or nothing")
    run.add_argument("--sanitize", action="store_true", help="replace NaN/Inf pixels instead of stopping")
    run.add_argument("--write-threads", type=_non_negative, metavar="N",
                     help="threads that write frames while the next are made (default: 1 per 4 CPUs, up to 4; "
                          "a movie 1; 0: write on the render thread)")
    run.set_defaults(func=_cmd_run)

    validate = sub.add_parser("validate", help="check a job spec and report every problem")
    validate.add_argument("job")
    validate.set_defaults(func=_cmd_validate)

    info = sub.add_parser("info", help="describe a plate: range, size, channels, colour, missing frames")
    info.add_argument("path", help="a frame pattern, a frame of a sequence, or a movie")
    info.add_argument("--first", type=int)
    info.add_argument("--last", type=int)
    info.add_argument("--part")
    info.add_argument("--view")
    info.add_argument("--json", action="store_true")
    info.add_argument("--check", action="store_true",
                      help="decode every frame and report unreadable frames and NaN/Inf pixels (exit 2 if any)")
    info.set_defaults(func=_cmd_info)

    schema = sub.add_parser("schema", help="print the job spec's JSON Schema")
    schema.set_defaults(func=_cmd_schema)

    demo = sub.add_parser("demo", help="make a demo plate, grade it with keyframes, show where to look")
    demo.add_argument("--out", default="retake_demo", help="folder for the demo (default: ./retake_demo)")
    demo.add_argument("--frames", type=int, default=48, help="length of the demo plate (default 48)")
    demo.add_argument("--device", default="auto", choices=("auto", "cuda", "mps", "cpu"))
    demo.set_defaults(func=_cmd_demo)

    from engine.commands import register_all

    register_all(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # This is the engine's own process (the panels launch it too): malloc may keep memory.
    keep_freed_memory()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except RetakeError as exc:
        kind = "error" if isinstance(exc, InputError) else "stopped"
        if getattr(args, "progress", None) == "json":
            _json_progress({"event": "error", "exit_code": exc.exit_code, "message": str(exc),
                            "path": getattr(exc, "path", None), "frame": getattr(exc, "frame", None),
                            "hint": getattr(exc, "hint", None)})
        print(f"retake: {kind}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("retake: stopped", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns a bug into exit code 1
        if args.debug or os.environ.get("RETAKE_DEBUG"):
            traceback.print_exc()
        print(f"retake: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback, "
              "and report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
