"""``retake preview``: display PNGs of plate or result frames, for panels and thumbnails.

Hosts never decode an EXR themselves (Nuke's and Resolve's Python have no OpenEXR,
and guessing colour there would be wrong); they ask the engine for an 8-bit sRGB
PNG of a frame, made the same way as every other conversion in Retake: the plate's
colour space -> the working space (ACEScg) -> the SDR display/view through OCIO.

    retake preview PLATE --frame 1001 --out thumb.png [--size 480] [--colorspace NAME]
    retake preview JOB.json --frame 1001 --frame 1040 --out before.####.png
    retake preview JOB.json --result --frame 1010 --out after.png      # the job's output
    retake preview PLATE --frame 1001 --out t.png --overlay faces.json  # with tracks drawn over

Prints each written file on stdout, one per line.
"""
from __future__ import annotations

import argparse
import os
import re

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("preview", help="write display PNGs (sRGB, through OCIO) of plate or result frames")
    parser.add_argument("source", help="a plate (frame pattern, frame, movie) or a job file (.json)")
    parser.add_argument("--frame", type=int, action="append", required=True,
                        help="an absolute frame number; repeat for several frames")
    parser.add_argument("--out", required=True,
                        help="the PNG to write; with several frames a pattern such as thumb.####.png")
    parser.add_argument("--size", type=int, default=480, help="the longest edge in pixels (default 480)")
    parser.add_argument("--result", action="store_true", help="with a job: show the job's output, not its plate")
    parser.add_argument("--colorspace", help="the source's OCIO colour space (default: the job's, else the file's)")
    parser.add_argument("--overlay", action="append", default=[], metavar="TRACKS.json",
                        help="draw a `retake track` JSON file (faces, planar, camera) over the frame; repeatable")
    parser.set_defaults(func=_cmd_preview)


def _frame_file(pattern: str, frame: int, several: bool) -> str:
    if "#" in pattern:
        return re.sub(r"#+", lambda m: f"{frame:0{len(m.group(0))}d}", pattern, count=1)
    match = re.search(r"%0?(\d*)d", pattern)
    if match:
        return pattern.replace(match.group(0), f"{frame:0{int(match.group(1) or 0)}d}", 1)
    if several:
        root, ext = os.path.splitext(pattern)
        return f"{root}.{frame:04d}{ext}"
    return pattern


def _cmd_preview(args: argparse.Namespace) -> int:
    from engine.colour import Colour
    from engine.errors import InputError
    from engine.io.plates import open_plate
    from engine.job import load_job

    if args.size < 16 or args.size > 8192:
        raise InputError(f"--size {args.size} is out of range", hint="give 16 to 8192 pixels")
    if not args.out.lower().endswith(".png"):
        raise InputError("the preview is a PNG", path=args.out, hint="give an --out path ending in .png")
    config = None
    colorspace = args.colorspace
    first = last = None
    part = view = None
    path = args.source
    if args.source.lower().endswith(".json"):
        job = load_job(args.source)
        config = job.ocio
        if args.result:
            path = job.output.path
            colorspace = colorspace or job.output.colorspace
            if job.output.format != "exr":
                # Movie outputs number their frames from the plate's first frame.
                first = job.plate.first
        else:
            path, first, last = job.plate.path, job.plate.first, job.plate.last
            part, view = job.plate.part, job.plate.view
            colorspace = colorspace or job.plate.colorspace
    elif args.result:
        raise InputError("--result needs a job file as the source", path=args.source,
                         hint="give the job (.json) whose output you want to see")
    colour = Colour(config)
    from engine.analysis.overlay import load_tracks
    overlays = [load_tracks(p) for p in args.overlay]
    several = len(args.frame) > 1
    with open_plate(path, first=first, last=last, part=part, view=view) as plate:
        space = colour.resolve_colorspace(colorspace) if colorspace else colour.colorspace_for_header(plate.info.header)
        for frame in args.frame:
            target = _frame_file(args.out, frame, several)
            pixels = plate.read(frame)
            rgb = pixels[..., :3] if pixels.shape[-1] >= 3 else pixels[..., :1].repeat(3, axis=-1)
            display = colour.to_display(colour.to_working(rgb, space))
            _write_png(target, display, args.size, plate.info.header.pixel_aspect, overlays, frame)
            print(target)
    return 0


def _write_png(path: str, display: "np.ndarray", size: int, pixel_aspect: float,
               overlays: list | None = None, frame: int = 0) -> None:
    """Write display code values as an 8-bit sRGB-display PNG, the longest edge ``size`` px.

    display: (H, W, 3) float32 display-encoded (the SDR view's output, nominally
    0..1); clipped to 0..1 here, because a PNG holds display values only. Anamorphic
    plates are shown unsqueezed (``pixel_aspect``). ``overlays``: track files
    (``engine.analysis.overlay``) drawn at ``frame`` after the resize, so lines stay crisp.
    """
    import numpy as np
    import OpenImageIO as oiio

    from engine.errors import InputError
    from engine.io.atomic import atomic_output

    height, width = display.shape[:2]
    shown_w = width * max(pixel_aspect, 1e-3)
    scale = min(1.0, size / max(shown_w, height))
    out_w, out_h = max(1, round(shown_w * scale)), max(1, round(height * scale))
    source = oiio.ImageBuf(np.ascontiguousarray(np.clip(display, 0.0, 1.0), dtype=np.float32))
    if (out_w, out_h) != (width, height):
        # OIIO's filtered resize averages over the footprint: a thumbnail does not alias.
        source = oiio.ImageBufAlgo.resize(source, roi=oiio.ROI(0, out_w, 0, out_h, 0, 1, 0, 3))
    pixels = np.clip(np.asarray(source.get_pixels(oiio.FLOAT)), 0.0, 1.0)
    code = np.ascontiguousarray(np.round(pixels * 255.0).astype(np.uint8))
    if overlays:
        from engine.analysis.overlay import draw_tracks
        for data in overlays:
            draw_tracks(code, data, frame, out_w / width, out_h / height)
    with atomic_output(path) as tmp:
        out = oiio.ImageOutput.create(tmp)
        if out is None:
            raise InputError(f"cannot write a PNG: {oiio.geterror()}", path=path, hint="check the folder")
        try:
            spec = oiio.ImageSpec(out_w, out_h, 3, oiio.UINT8)
            spec.attribute("oiio:ColorSpace", "sRGB")
            if not out.open(tmp, spec) or not out.write_image(code):
                raise InputError(f"cannot write the PNG: {out.geterror()}", path=path, hint="check the folder")
        finally:
            out.close()
