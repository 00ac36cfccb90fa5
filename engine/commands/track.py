"""``retake track faces|planar|camera PLATE --out FILE``: tracking for compositors.

The output format follows the extension of each ``--out`` (several may be given):

* ``faces``: ``.json`` (every face's 468 landmarks, box, head pose, confidence per
  frame), ``.nk`` (one Tracker4 node per face: eye corners, nose tip, mouth
  corners, chin), ``.csv`` (one row per face per frame);
* ``planar``: ``.json`` or ``.nk`` (a CornerPin2D node) for the quad given with
  ``--quad`` on ``--frame``;
* ``camera``: ``.json`` or ``.nk`` (a Transform node) of the dominant (background) motion.

Frame numbers are the plate's own. Imports nothing heavy at module level.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

FACE_FORMATS = (".json", ".nk", ".csv")
PLANAR_FORMATS = (".json", ".nk")


def _common(parser: argparse.ArgumentParser, formats: tuple[str, ...]) -> None:
    parser.add_argument("plate", help="a frame pattern (plate.####.exr), a frame of a sequence, or a movie")
    parser.add_argument("--out", action="append", required=True, metavar="FILE",
                        help="output file; the format follows the extension (" + ", ".join(formats) +
                             "); give --out more than once for several formats")
    parser.add_argument("--first", type=int, help="first frame to analyse (default: the plate's)")
    parser.add_argument("--last", type=int, help="last frame to analyse (default: the plate's)")
    parser.add_argument("--colorspace", help="the plate's OCIO colour space (default: read from the file)")
    parser.add_argument("--ocio", help="an OCIO config (path or ocio:// URI); default $OCIO, then the built-in one")
    parser.add_argument("--progress", default="bar", choices=("bar", "json", "none"))


def register(sub: argparse._SubParsersAction) -> None:
    track = sub.add_parser("track", help="track faces, a planar surface or the camera; export JSON, Nuke .nk, CSV")
    kinds = track.add_subparsers(dest="track_kind", required=True)

    faces = kinds.add_parser("faces", help="up to 8 faces with stable ids: 468 landmarks, box, head pose")
    _common(faces, FACE_FORMATS)
    faces.add_argument("--max-faces", type=int, default=8)
    faces.add_argument("--no-smoothing", action="store_true", help="export the raw landmarks (no One Euro filter)")
    faces.add_argument("--detect-interval", type=int, default=4,
                       help="run the face detector every N frames to find new faces (and every frame while one "
                            "is missing); default 4")
    faces.set_defaults(func=_run_faces)

    planar = kinds.add_parser("planar", help="follow a quad (4 corners on one frame) across the plate")
    _common(planar, PLANAR_FORMATS)
    planar.add_argument("--quad", required=True, metavar="X1,Y1,X2,Y2,X3,Y3,X4,Y4",
                        help="the 4 corners on --frame, in frame pixels with the origin top-left, y down")
    planar.add_argument("--frame", type=int, help="the frame the quad is drawn on (default: the first)")
    planar.add_argument("--nuke-coordinates", action="store_true",
                        help="--quad is in Nuke's coordinates (origin bottom-left, y up)")
    planar.set_defaults(func=_run_planar)

    camera = kinds.add_parser("camera", help="per-frame camera motion (dominant background motion)")
    _common(camera, PLANAR_FORMATS)
    camera.add_argument("--frame", type=int, help="the reference frame (default: the first)")
    camera.set_defaults(func=_run_camera)


def _check_outputs(outs: list[str], formats: tuple[str, ...], plate: str) -> None:
    from engine.errors import InputError

    for out in outs:
        extension = os.path.splitext(out)[1].lower()
        if extension not in formats:
            raise InputError(f"unknown output format {extension or '(none)'!r}", path=out,
                             hint="end the file name in one of " + ", ".join(formats))
        if os.path.abspath(out) == os.path.abspath(plate):
            raise InputError("the output would overwrite the plate", path=out, hint="choose another file name")
        folder = os.path.dirname(os.path.abspath(out))
        if not os.path.isdir(folder):
            raise InputError("the output folder does not exist", path=out, hint=f"create {folder} first")


class _Progress:
    def __init__(self, mode: str, total: int, what: str) -> None:
        self.mode, self.total, self.what = mode, total, what
        self.done = 0
        self.start = time.monotonic()

    def __call__(self, frame: int) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.start
        fps = self.done / elapsed if elapsed > 0 else 0.0
        if self.mode == "json":
            print(json.dumps({"event": "frame", "frame": frame, "done": self.done, "total": self.total,
                              "fps": round(fps, 3)}), flush=True)
        elif self.mode == "bar" and (self.done == self.total or self.done % 10 == 0 or sys.stderr.isatty()):
            end = "\n" if self.done == self.total or not sys.stderr.isatty() else ""
            print(f"\rretake track {self.what}: {self.done}/{self.total} frame {frame}  {fps:.2f} frames/s",
                  end=end, file=sys.stderr, flush=True)


def _plate_range(args: argparse.Namespace) -> tuple[int, int, float]:
    from engine.io.plates import open_plate

    with open_plate(args.plate, first=args.first, last=args.last) as plate:
        info = plate.info
        fps = float(info.fps) if info.fps else 24.0
        return info.first, info.last, fps


def _frames(args: argparse.Namespace) -> Any:
    from engine.analysis.frames import plate_frames_rgb8

    return plate_frames_rgb8(args.plate, first=args.first, last=args.last, colorspace=args.colorspace,
                             ocio_config=args.ocio)


def _done(args: argparse.Namespace, what: str, summary: str) -> None:
    if args.progress == "json":
        print(json.dumps({"event": "done", "what": what, "outputs": args.out, "summary": summary}), flush=True)
    elif args.progress == "bar":
        print(f"retake track {what}: {summary} -> {', '.join(args.out)}", file=sys.stderr)


def _run_faces(args: argparse.Namespace) -> int:
    from engine.analysis import face_export
    from engine.analysis.face_tracks import track_faces
    from engine.analysis.models import model_path

    _check_outputs(args.out, FACE_FORMATS, args.plate)
    model_path("face_detection"), model_path("face_landmark")  # a missing model stops before any decoding
    first, last, fps = _plate_range(args)
    progress = _Progress(args.progress, last - first + 1, "faces") if args.progress != "none" else None
    tracks = track_faces(_frames(args), fps, progress=progress, max_faces=args.max_faces,
                         smoothing=not args.no_smoothing, detect_interval=args.detect_interval)
    for out in args.out:
        face_export.write(tracks, out, plate=args.plate)
    ids = tracks.ids()
    _done(args, "faces", f"{len(ids)} face(s) (ids {', '.join(map(str, ids)) or 'none'}) over "
                         f"{len(tracks.frames)} frame(s)")
    return 0


def _parse_quad(text: str, height: int, nuke: bool) -> Any:
    import numpy as np

    from engine.errors import InputError

    try:
        values = [float(v) for v in text.replace(" ", ",").split(",") if v]
    except ValueError:
        values = []
    if len(values) != 8:
        raise InputError(f"--quad {text!r} is not 8 numbers", hint="give X1,Y1,X2,Y2,X3,Y3,X4,Y4 in frame pixels")
    quad = np.array(values, dtype=np.float64).reshape(4, 2)
    if nuke:
        quad[:, 1] = height - quad[:, 1]
    return quad


def _run_planar(args: argparse.Namespace) -> int:
    from engine.analysis import planar

    _check_outputs(args.out, PLANAR_FORMATS, args.plate)
    first, last, fps = _plate_range(args)
    frames = list(_frames(args))  # the tracker runs from the reference frame both ways
    if not frames:
        from engine.errors import InputError

        raise InputError("no frames to track", path=args.plate, hint="check --first/--last")
    height, width = frames[0][1].shape[:2]
    quad = _parse_quad(args.quad, height, args.nuke_coordinates)
    reference = args.frame if args.frame is not None else frames[0][0]
    progress = _Progress(args.progress, len(frames), "planar") if args.progress != "none" else None
    track = planar.track_quad(frames, reference, quad, progress=progress)
    for out in args.out:
        planar.write(track, out, width, height, fps, plate=args.plate)
    lost = [f for f, ok in track.valid.items() if not ok]
    _done(args, "planar", f"{len(track.corners)} frame(s), {len(lost)} unreliable")
    return 0


def _run_camera(args: argparse.Namespace) -> int:
    from engine.analysis import camera

    _check_outputs(args.out, PLANAR_FORMATS, args.plate)
    first, last, fps = _plate_range(args)
    frames = list(_frames(args))
    if not frames:
        from engine.errors import InputError

        raise InputError("no frames to track", path=args.plate, hint="check --first/--last")
    height, width = frames[0][1].shape[:2]
    reference = args.frame if args.frame is not None else frames[0][0]
    progress = _Progress(args.progress, len(frames), "camera") if args.progress != "none" else None
    motion = camera.track_camera(frames, reference, progress=progress)
    for out in args.out:
        camera.write(motion, out, width, height, fps, plate=args.plate)
    _done(args, "camera", f"{len(motion.homographies)} frame(s)")
    return 0
