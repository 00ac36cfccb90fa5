"""EXR I/O benchmark: throughput and streaming memory (prints a table; not a test).

    .venv/bin/python bench/io.py [--quick]

1. EXR write (engine.io.aces_exr.write_exr, half, ACES container and PIZ)
   and read back (OpenImageIO, float) in frames per second at 1080p and 4K.
2. Colour conversion of a 1080p frame, ms: the engine's (``Colour.from_working``, OCIO
   through a PackedImageDesc) against OCIO's own ``applyRGB`` on the same processor.
3. The real pipeline (``run_job``, a keyframed grade: read -> colour -> grade -> colour ->
   EXR write) on a 1080p PIZ plate, frames/s: everything on the render thread against the
   next frame read ahead (``engine.io.read_ahead``) and the frames written behind
   (``engine.io.write_behind``), in the same run.
4. Peak resident memory of a child process running the real pipeline
   (``run_job`` with a keyframed grade) over N frames, for a short and a
   10x longer run: it must be flat (memory grows with the
   frame size, never with the clip length).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import OpenImageIO as oiio  # noqa: E402
import PyOpenColorIO as ocio  # noqa: E402

from engine.colour import Colour  # noqa: E402
from engine.io.aces_exr import write_exr  # noqa: E402
from engine.io.header import AP0  # noqa: E402
from peak_memory import peak_rss_mib  # noqa: E402


def _read(path: str) -> np.ndarray:
    inp = oiio.ImageInput.open(path)
    if inp is None:
        raise OSError(oiio.geterror())
    try:
        return inp.read_image(oiio.FLOAT)
    finally:
        inp.close()


def throughput(width: int, height: int, frames: int, compression: str, folder: str) -> tuple[float, float, float]:
    """(write fps, read fps, MB per frame) for ``frames`` frames of (height, width, 3) half EXR."""
    rng = np.random.default_rng(0)
    pixels = (rng.random((height, width, 3), dtype=np.float32) * 2.0).astype(np.float32)
    paths = [os.path.join(folder, f"t_{width}_{compression}.{i:04d}.exr") for i in range(frames)]
    start = time.perf_counter()
    for path in paths:
        write_exr(path, pixels, chromaticities=AP0, aces_container=compression == "none", compression=compression)
    write_s = time.perf_counter() - start
    start = time.perf_counter()
    for path in paths:
        _read(path)
    read_s = time.perf_counter() - start
    size = sum(os.path.getsize(p) for p in paths) / frames / 1e6
    for path in paths:
        os.remove(path)
    return frames / write_s, frames / read_s, size


def colour_ms(space: str, repeat: int) -> tuple[float, float]:
    """(engine ms, applyRGB ms), best of ``repeat``, for working space -> ``space`` on a 1080p frame."""
    colour = Colour()
    pixels = (np.random.default_rng(2).random((1080, 1920, 3), dtype=np.float32) * 4.0)
    cpu = colour.config.getProcessor(colour.working_space, colour.resolve_colorspace(space)) \
        .getOptimizedCPUProcessor(ocio.OPTIMIZATION_LOSSLESS)
    engine_s, apply_s = [], []
    for _ in range(repeat):   # interleaved, so both see the same spell of the machine
        start = time.perf_counter()
        colour.from_working(pixels, space)
        engine_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        copy = pixels.copy()   # the engine converts a copy too
        cpu.applyRGB(copy)
        apply_s.append(time.perf_counter() - start)
    return min(engine_s) * 1e3, min(apply_s) * 1e3


def _grade_job(plate: str, out: str, last: int, compression: str) -> dict:
    return {
        "plate": {"path": plate, "colorspace": "ACES2065-1"},
        "keyframes": [{"frame": 1, "grade": {}}, {"frame": last, "grade": {"slope": [1.2, 1.0, 0.8]}}],
        "transform": {"name": "grade"},
        "output": {"path": out, "compression": compression},
    }


def pipeline_fps(frames: int, configs: dict[str, dict], repeat: int) -> dict[str, float]:
    """Frames/s of ``run_job`` over a 1080p PIZ plate for each ``RunOptions`` in ``configs``, best of ``repeat``."""
    from engine.job import parse_job
    from engine.pipeline import RunOptions, run_job

    rates = {label: 0.0 for label in configs}
    with tempfile.TemporaryDirectory() as folder:
        rng = np.random.default_rng(3)
        # Smooth pictures with grain, as plates are: PIZ shrinks them as it does real footage.
        ramp = np.linspace(0.0, 1.0, 1920, dtype=np.float32)[None, :, None] * np.linspace(
            0.2, 1.0, 1080, dtype=np.float32)[:, None, None]
        for frame in range(1, frames + 1):
            pixels = ramp * np.array([1.0, 0.8, 0.6], np.float32) * (0.5 + 0.5 * frame / frames)
            pixels = pixels + rng.normal(0.0, 0.01, pixels.shape).astype(np.float32)
            write_exr(os.path.join(folder, f"plate.{frame:04d}.exr"), pixels, chromaticities=AP0,
                      aces_container=False, compression="piz")
        plate = os.path.join(folder, "plate.####.exr")
        for run in range(repeat):   # interleaved, so every configuration sees the same spells of the machine
            for i, (label, options) in enumerate(configs.items()):
                out = os.path.join(folder, f"out_{i}_{run}", "out.####.exr")
                start = time.perf_counter()
                run_job(parse_job(_grade_job(plate, out, frames, "piz")), RunOptions(**options))
                rates[label] = max(rates[label], frames / (time.perf_counter() - start))
    return rates


def child_stream(frames: int, folder: str) -> None:
    """Child process: run the real pipeline (a keyframed grade) over ``frames`` frames; print peak RSS (MiB)."""
    from engine.job import parse_job
    from engine.pipeline import run_job

    job = parse_job({
        "plate": {"path": os.path.join(folder, "plate.####.exr")},
        "keyframes": [{"frame": 1, "grade": {}}, {"frame": frames, "grade": {"slope": [1.2, 1.0, 0.8]}}],
        "transform": {"name": "grade"},
        "output": {"path": os.path.join(folder, "out", "out.####.exr")},
    })
    run_job(job)
    print(peak_rss_mib())


def peak_memory(frames: int) -> float:
    """Peak RSS in MiB of a fresh child running the pipeline over ``frames`` frames at 320x180."""
    with tempfile.TemporaryDirectory() as folder:
        rng = np.random.default_rng(1)
        source = os.path.join(folder, "source.exr")
        write_exr(source, rng.random((180, 320, 3), dtype=np.float32), chromaticities=AP0, aces_container=True)
        for frame in range(1, frames + 1):  # every frame a link to one file: the plate costs no disk
            os.symlink(source, os.path.join(folder, f"plate.{frame:04d}.exr"))
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", str(frames), folder],
                             capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames: a fast smoke run")
    parser.add_argument("--child", nargs=2, metavar=("FRAMES", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_stream(int(args.child[0]), args.child[1])
        return

    frames = {"1080p": 3 if args.quick else 12, "4K": 2 if args.quick else 6}
    sizes = {"1080p": (1920, 1080), "4K": (3840, 2160)}
    print(f"EXR I/O, half RGB, {os.cpu_count()} CPU(s){' (quick)' if args.quick else ''}")
    print(f"{'size':<6} {'compression':<12} {'frames':>6} {'write fps':>10} {'read fps':>9} {'MB/frame':>9}")
    with tempfile.TemporaryDirectory() as folder:
        for label, (w, h) in sizes.items():
            for compression in ("none", "piz"):
                wfps, rfps, mb = throughput(w, h, frames[label], compression, folder)
                print(f"{label:<6} {compression:<12} {frames[label]:>6} {wfps:>10.1f} {rfps:>9.1f} {mb:>9.1f}")

    print()
    print("colour conversion of a 1080p frame from ACEScg, ms (best of 5)")
    print(f"{'to':<28} {'engine':>7} {'applyRGB':>9} {'ratio':>6}")
    for space in ("ACES2065-1", "ACEScct", "sRGB Encoded Rec.709 (sRGB)"):
        ours, theirs = colour_ms(space, 5)
        print(f"{space:<28} {ours:>7.1f} {theirs:>9.1f} {theirs / ours:>5.1f}x")

    print()
    from engine.io.write_behind import write_threads
    default = write_threads("exr")
    count = 6 if args.quick else 24
    repeat = 2 if args.quick else 3
    print(f"the pipeline (read -> colour -> grade -> PIZ EXR write), 1080p, {count} frames, frames/s "
          f"(best of {repeat}); write threads by default here: {default}")
    configs = {
        "all on the render thread": {"write_threads": 0, "read_ahead": False},
        "read ahead": {"write_threads": 0},
        f"write behind ({default})": {"read_ahead": False},
        "both (the default)": {},
        f"both, {2 * default} write threads": {"write_threads": 2 * default},
    }
    rates = pipeline_fps(count, configs, repeat)
    baseline = rates["all on the render thread"]
    print(f"{'':<28} {'fps':>6} {'ratio':>6}")
    for label, rate in rates.items():
        print(f"{label:<28} {rate:>6.2f} {rate / baseline:>5.2f}x")

    short, long = (24, 240) if args.quick else (48, 480)
    print()
    print("the pipeline (read -> colour -> grade -> ACES EXR write), 320x180, peak RSS of a fresh process")
    print(f"{'frames':>6} {'peak MiB':>9}")
    peaks = {}
    for count in (short, long):
        peaks[count] = peak_memory(count)
        print(f"{count:>6} {peaks[count]:>9.1f}")
    growth = peaks[long] - peaks[short]
    verdict = "flat" if growth < 0.1 * peaks[short] + 8.0 else "GROWS"
    print(f"growth {growth:+.1f} MiB for {long - short} more frames: {verdict}")


if __name__ == "__main__":
    main()
