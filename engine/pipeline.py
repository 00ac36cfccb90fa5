"""Run a job: load -> colour -> resize -> transform -> lock -> write, one frame at a time.

Frames stream: at any moment the pipeline holds one source frame and its
result, so memory grows with resolution, never with the length of the clip.
Every output frame is written atomically and stamped with a key of the job and
of its source frame (``retake/jobHash`` in its header); a re-run of the same
job skips frames whose key matches and renders the rest, so a killed or
cancelled render resumes where it stopped and ends bit-identical to an
uninterrupted one.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np

from engine import __version__
from engine.colour import Colour
from engine.device import choose_device, describe_device
from engine.errors import CancelledError, InputError, JobError
from engine.io.atomic import atomic_output
from engine.io.describe import compress_frames
from engine.io.header import Chromaticities
from engine.io.plates import Plate, open_plate
from engine.io.writers import OutputSpec as WriterSpec
from engine.io.read_ahead import ReadAhead
from engine.io.write_behind import WriteBehind, write_threads
from engine.io.writers import open_writer
from engine.job import LOCK_NAMES, Job, job_hash, parse_fps
from engine.generate.keyframes import needs_generation
from engine.lock_stage import LockStage, plate_has_people
from engine.resize import resize, target_size
from engine.timecode import offset_timecode
from engine.transforms import KEYFRAME_DRIVEN, MAKES_ALPHA, NOT_THE_PLATE, STRUCTURE_KEEPING, FrameTransform, \
    TransformContext, build_transform, output_size

ProgressCallback = Callable[[dict[str, Any]], None]
HALF_MAX = 65504.0
_RECENT_FRAMES = 4  # source frames kept in memory: constant, whatever the clip length


@dataclass
class RunOptions:
    """How to run a job, as opposed to what it makes (that is the job)."""

    frames: tuple[int, int] | None = None  # a farm chunk, inclusive; None: the whole plate
    device: str = "auto"
    draft: bool = False
    host_config: str | None = None
    progress: ProgressCallback | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    # Threads that write the frames while the next are made (engine.io.write_behind);
    # None: by the machine (1 a movie), 0: written on the render thread.
    write_threads: int | None = None
    # Read the next source frame on a thread while this one renders (engine.io.read_ahead).
    read_ahead: bool = True


@dataclass
class RunResult:
    output: str
    manifest: str | None
    rendered: list[int]
    skipped: list[int]
    seconds: float
    device: str
    warnings: list[str]


def _source_stamp(path: str | None) -> str:
    """Size and mtime of a source file: a re-exported frame must be re-rendered."""
    if path is None:
        return "-"
    try:
        stat = os.stat(path)
    except OSError:
        return "missing"
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(path))


def _manifest_path(output_path: str) -> str:
    """``out/shot.####.exr`` -> ``out/shot.retake.json``; ``out/shot.mov`` -> ``out/shot.mov.retake.json``."""
    directory, name = os.path.split(output_path)
    stem = name
    for token in ("#", "%", "@"):
        if token in stem:
            stem = stem[: stem.index(token)].rstrip("._-")
            break
    return os.path.join(directory, (stem or "output") + ".retake.json")


class _Progress:
    def __init__(self, callback: ProgressCallback | None, total: int) -> None:
        self.callback = callback
        self.total = total
        self.done = 0
        self.rendered = 0
        self.started = time.perf_counter()

    def emit(self, event: dict[str, Any]) -> None:
        if self.callback is not None:
            self.callback(event)

    def frame(self, frame: int, path: str | None, skipped: bool) -> None:
        self.done += 1
        if not skipped:
            self.rendered += 1
        elapsed = time.perf_counter() - self.started
        fps = self.rendered / elapsed if elapsed > 0 and self.rendered else 0.0
        remaining = self.total - self.done
        eta = remaining / fps if fps > 0 else None
        self.emit({"event": "frame", "frame": frame, "done": self.done, "total": self.total,
                   "skipped": skipped, "path": path, "fps": round(fps, 3),
                   "eta_s": None if eta is None else round(eta, 1)})


class _SourceFrames:
    """Reads source frames with the job's missing-frame and NaN/Inf policies applied."""

    def __init__(self, plate: Plate, job: Job) -> None:
        self.plate = plate
        self.job = job
        self.missing = set(plate.info.missing)
        self.present = sorted(set(range(plate.info.first, plate.info.last + 1)) - self.missing)

    def source_of(self, frame: int) -> int | None:
        """The frame actually read for ``frame``: itself, a held neighbour, or None for black."""
        if frame not in self.missing:
            return frame
        if self.job.plate.missing == "black" or not self.present:
            return None
        before = [f for f in self.present if f < frame]
        return before[-1] if before else self.present[0]

    def read(self, frame: int, notes: list[tuple[int, str]]) -> np.ndarray:
        """(H, W, C) float32, the plate's own encoding, over its display window.

        What the user should hear about (NaN/Inf replaced) is added to ``notes`` as (frame,
        message): this may run on the read-ahead thread, and events are sent from the render's."""
        source = self.source_of(frame)
        info = self.plate.info
        if source is None:
            channels = len(info.header.selected) if len(info.header.selected) in (3, 4) else 3
            return np.zeros((info.height, info.width, channels), dtype=np.float32)
        pixels = self.plate.read(source)
        finite = np.isfinite(pixels)
        if not finite.all():
            nan = int(np.isnan(pixels).sum())
            inf = int((~finite).sum()) - nan
            where = self.plate.frame_path(source) or info.path
            if self.job.plate.nonfinite != "sanitize":
                raise InputError(f"{nan} NaN and {inf} Inf pixel values", path=where, frame=source,
                                 hint='fix the plate, or let Retake replace them (NaN -> 0, Inf -> ±65504) '
                                      'with plate.nonfinite "sanitize" or `retake run --sanitize`')
            pixels = np.nan_to_num(pixels, nan=0.0, posinf=HALF_MAX, neginf=-HALF_MAX)
            notes.append((source, f"frame {source}: replaced {nan} NaN and {inf} Inf pixel values"))
        return pixels


@dataclass
class _Read:
    """A source frame as the reader made it: (H, W, C) float32 ACEScg, at the plate's size until
    ``resized``; ``notes``: (frame, message) warnings not yet sent."""

    pixels: np.ndarray
    notes: list[tuple[int, str]]
    resized: bool = False


def _check_keyframes(job: Job, first: int, last: int) -> None:
    for i, key in enumerate(job.keyframes):
        if not first <= key.frame <= last:
            raise JobError(f"keyframe frame {key.frame} is outside the plate ({first}-{last})",
                           path=f"$.keyframes[{i}].frame",
                           hint="key a frame of the plate; output frames are the source's frame numbers")
        for name in ("image", "reference"):
            value = getattr(key, name)
            if value is not None and not os.path.isfile(value):
                raise JobError(f"the keyframe {name} {value!r} does not exist", path=f"$.keyframes[{i}].{name}",
                               hint="check the path (relative paths are relative to the job file)")


def _protect_inputs(job: Job, plate: Plate, writer_paths: dict[int, str | None], output_path: str,
                    extra_inputs: list[str]) -> None:
    """Refuse any output that would land on a file the job reads."""
    info = plate.info
    inputs: set[str] = {_real(p) for p in job.input_paths() + extra_inputs}
    if info.kind == "movie":
        inputs.add(_real(info.path))
    else:
        # The plate's files, and the names its missing frames would have: writing a
        # "missing" frame into the source sequence would corrupt it just the same.
        for frame in set(range(info.first, info.last + 1)) | set(writer_paths):
            path = plate.frame_path(frame)
            if path:
                inputs.add(_real(path))
    if _real(output_path) == _real(info.path):
        raise InputError("the output path is the plate's own path", path=output_path,
                         hint="write the result under another name or folder; Retake never writes over a source")
    for frame, path in writer_paths.items():
        if path is not None and _real(path) in inputs:
            raise InputError("this output frame would overwrite an input of the job", path=path, frame=frame,
                             hint="write the result under another name or folder; Retake never writes over a source")


def run_job(job: Job, options: RunOptions | None = None, *, extra_inputs: list[str] | None = None) -> RunResult:
    """Render ``job`` (or the chunk ``options.frames`` of it). Raises InputError/JobError/CancelledError."""
    options = options or RunOptions()
    started = time.perf_counter()
    warnings: list[str] = []
    if options.draft:
        job = replace(job, output=replace(job.output, resolution="draft"))
    device = choose_device(options.device)
    colour = Colour(job.ocio, host_config=options.host_config)

    plate = open_plate(job.plate.path, first=job.plate.first, last=job.plate.last,
                       part=job.plate.part, view=job.plate.view)
    with plate:
        info = plate.info
        if info.missing and job.plate.missing == "error":
            shown = compress_frames(list(info.missing))
            example = plate.frame_path(info.missing[0])
            raise InputError(f"{len(info.missing)} frame(s) missing from the plate: {shown}", path=example or info.path,
                             frame=info.missing[0],
                             hint='render or restore them, or set plate.missing to "hold" (repeat the previous '
                                  'frame) or "black"')
        if len(info.missing) == info.frame_count:
            raise InputError("no frame of the plate exists in the requested range", path=info.path,
                             hint="check plate.first and plate.last against the files on disk")
        _check_keyframes(job, info.first, info.last)

        first, last = info.first, info.last
        if options.frames is not None:
            first, last = options.frames
            if first > last or first < info.first or last > info.last:
                raise InputError(f"--frames {first}-{last} is not inside the plate ({info.first}-{info.last})",
                                 hint="give a chunk of the plate's frame range")

        source_space: str | Chromaticities
        if job.plate.colorspace is not None:
            source_space = colour.resolve_colorspace(job.plate.colorspace)
        else:
            source_space = colour.colorspace_for_header(info.header)
            shown = source_space if isinstance(source_space, str) else f"linear with the file's primaries {source_space}"
            warnings.append(f"plate.colorspace is not set: reading the plate as {shown}, from what the file says "
                            "(set plate.colorspace to be sure)")
        if job.plate.fps is not None:
            num, den = parse_fps(job.plate.fps) or (24, 1)
            fps = Fraction(num, den)
        elif info.fps is not None:
            fps = info.fps
        else:
            fps = Fraction(24)
            warnings.append("the plate does not say its frame rate: using 24 fps (set plate.fps to change it)")

        out_w, out_h = target_size(job.output.resolution, info.width, info.height)
        has_alpha = len(info.header.selected) in (2, 4) or job.transform.name in MAKES_ALPHA
        spec = WriterSpec(path=job.output.path, format=job.output.format, colorspace=job.output.colorspace,
                          compression=job.output.compression)
        frames = list(range(first, last + 1))
        if options.frames is not None and (first, last) != (info.first, info.last) and spec.container in ("mov", "mp4"):
            raise InputError("a movie output cannot be rendered in chunks", path=job.output.path,
                             hint="render the whole plate, or write an EXR sequence for farm chunks")
        # The transformation works on frames of (out_w, out_h); a reframe writes its crop.
        write_w, write_h = output_size(job, out_w, out_h)
        writer = open_writer(spec, colour, fps=fps, width=write_w, height=write_h, has_alpha=has_alpha)
        behind = WriteBehind(writer, write_threads(spec.container, options.write_threads))
        transform: FrameTransform | None = None
        reader: ReadAhead | None = None
        try:
            _protect_inputs(job, plate, {f: writer.frame_path(f) for f in frames}, job.output.path,
                            extra_inputs or [])
            # The job's own files (keyframe images, references) count by content stamp too: a
            # keyframe repainted under the same name must re-render the frames it drives.
            stamps = "|".join(_source_stamp(path) for path in job.input_paths())
            digest = hashlib.sha256(f"{job_hash(job)}|{stamps}".encode()).hexdigest()
            progress = _Progress(options.progress, len(frames))
            sources = _SourceFrames(plate, job)

            def read_working(frame: int) -> _Read:
                notes: list[tuple[int, str]] = []
                pixels = sources.read(frame, notes)
                return _Read(colour.to_working(pixels, source_space), notes)

            # The last few frames are kept (transforms look at neighbours), and the loop below
            # has the next frame read while it renders this one (engine.io.read_ahead).
            reader = ReadAhead(read_working, _RECENT_FRAMES, ahead=options.read_ahead)

            def read_source(frame: int) -> np.ndarray:
                """Frame ``frame`` in the working space at the output size."""
                read = reader.get(frame)
                if not read.resized:
                    # Here, not on the reader's thread: a torch op there would start a second
                    # OpenMP team beside the render's, spinning on the same cores.
                    read.pixels = resize(read.pixels, out_w, out_h, device)
                    read.resized = True
                for noted, message in read.notes:
                    warnings.append(message)
                    progress.emit({"event": "warning", "frame": noted, "message": message})
                read.notes.clear()   # said once per read
                return read.pixels

            if job.transform.name in KEYFRAME_DRIVEN and needs_generation(job):
                # Keyframes with a prompt and no image are made first, beside the output, by the
                # studio's own local model; then they are inputs like any painted keyframe.
                from engine.generate.keyframes import generate_missing_keyframes

                made = dict(generate_missing_keyframes(
                    job, colour, read_source, (out_w, out_h), os.path.dirname(os.path.abspath(job.output.path)),
                    device, on_warning=warnings.append, cancelled=options.cancel.is_set, replace_unedited=True))
                job = replace(job, keyframes=tuple(replace(key, image=made[key.frame]) if key.frame in made else key
                                                   for key in job.keyframes))
                _protect_inputs(job, plate, {f: writer.frame_path(f) for f in frames}, job.output.path,
                                extra_inputs or [])
                # The generated files' stamps join the frame keys: a touched-up keyframe re-renders.
                stamps = "|".join(_source_stamp(path) for path in job.input_paths())
                digest = hashlib.sha256(f"{job_hash(job)}|{stamps}".encode()).hexdigest()

            transform = build_transform(job, TransformContext(
                colour=colour, plate=info, device=device.type, source=read_source, size=(out_w, out_h),
                frames=(info.first, info.last), cancelled=options.cancel.is_set))
            locks = None
            if job.transform.name in STRUCTURE_KEEPING | NOT_THE_PLATE:
                if any(getattr(job.locks, name) for name in LOCK_NAMES):
                    why = ("it changes colour only, so the source's faces, bodies, poses and blocking are kept anyway"
                           if job.transform.name in STRUCTURE_KEEPING else "its picture is not the plate's")
                    warnings.append(f"locks are not used by {job.transform.name!r}: {why}")
            else:
                locks = LockStage.from_locks(job.locks, colour, device.type, people_on_plate=lambda: plate_has_people(
                    read_source, (info.first, info.last), colour, options.cancel.is_set))
            progress.emit({"event": "start", "device": describe_device(device), "frames": [first, last],
                           "total": len(frames), "output": job.output.path, "writes": writer.describe(),
                           "source_colorspace": source_space if isinstance(source_space, str) else "chromaticities",
                           "size": [write_w, write_h], "ocio": colour.config_name, "job_hash": digest})
            for message in warnings:
                progress.emit({"event": "warning", "message": message})
            rendered: list[int] = []
            skipped: list[int] = []

            def report(finished: list[tuple[int, bool]]) -> None:
                """Frames whose files are on disk (or were already), in frame order."""
                for done_frame, was_skipped in finished:
                    (skipped if was_skipped else rendered).append(done_frame)
                    progress.frame(done_frame, writer.frame_path(done_frame), skipped=was_skipped)

            for index, frame in enumerate(frames):
                if options.cancel.is_set():
                    report(behind.done(wait_all=True))
                    raise CancelledError(f"cancelled after {len(rendered)} rendered frame(s); "
                                         "finished frames are kept and a re-run resumes")
                source = sources.source_of(frame)
                source_path = plate.frame_path(source) if source is not None else None
                key = hashlib.sha256(
                    f"{digest}|{frame}|{_source_stamp(source_path or (info.path if info.kind == 'movie' else None))}"
                    .encode()).hexdigest()[:32]
                if writer.is_complete(frame, key):
                    behind.skip(frame)
                else:
                    current = read_source(frame)
                    if index + 1 < len(frames):
                        reader.prefetch(frames[index + 1])
                    pixels = transform.apply(frame, current)
                    if locks is not None:
                        pixels = locks.apply(frame, current, pixels)
                    metadata = {"frame": str(frame), "job_hash": key, "source_file": source_path or info.path,
                                "retake_version": __version__}
                    if info.timecode:
                        metadata["timecode"] = offset_timecode(info.timecode, frame - info.first, fps)
                    # Written on the writer's threads while the next frame is made.
                    behind.write(frame, pixels, metadata)
                report(behind.done())
            report(behind.done(wait_all=True))
        finally:
            if reader is not None:
                reader.close()
            behind.close()
            # A transform that works beside the frames (the propagate transform's flow cache
            # writes) finishes that work here, cancelled or not.
            close = getattr(transform, "close", None)
            if callable(close):
                close()

    if locks is not None:
        for message in locks.warnings():
            warnings.append(message)
            progress.emit({"event": "warning", "message": message})
    manifest = _manifest_path(job.output.path)
    _write_manifest(manifest, job, digest, first, last, rendered, skipped, writer.describe(), describe_device(device))
    seconds = time.perf_counter() - started
    progress.emit({"event": "done", "rendered": len(rendered), "skipped": len(skipped), "seconds": round(seconds, 3),
                   "output": job.output.path, "manifest": manifest})
    return RunResult(output=job.output.path, manifest=manifest, rendered=rendered, skipped=skipped,
                     seconds=seconds, device=describe_device(device), warnings=warnings)


def _write_manifest(path: str, job: Job, digest: str, first: int, last: int, rendered: list[int],
                    skipped: list[int], writes: str, device: str) -> None:
    """A human- and host-readable record of the run; each frame's own header is the resume truth."""
    record = {
        "retake_version": __version__,
        "job_hash": digest,
        "frames": [first, last],
        "rendered": compress_frames(rendered),
        "skipped": compress_frames(skipped),
        "writes": writes,
        "device": device,
        "job": job.to_dict(),
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
