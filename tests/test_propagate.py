"""The propagate transformation: keyframe images carried along the plate's motion.

Small synthetic plates (96x64, a handful of frames) whose motion is known exactly, so the
flow is OpenCV DIS here (fast on the CPU; the end-to-end test uses the default torch flow);
"edit applied to every frame" is the ground truth. Flows go through a per-module disk
cache, so the slider sweeps reuse them.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.colour import Colour
from engine.errors import JobError
from engine.flow_cache import FlowCache
from engine.io.aces_exr import write_exr
from engine.io.header import AP1
from engine.job import parse_job
from engine.keyframes import load_keyframe_image
from engine.pipeline import RunOptions, run_job
from engine.synth import compose_flow
from engine.transforms import TransformContext
from engine.transforms.propagate import PropagateTransform
from tests.plate_factory import write_plate

W, H = 96, 64
N = 7                      # frames 0..6, keyframes at 0 and 6
VELOCITY = (1.3, -0.6)     # px per frame, sub-pixel


def texture(x: np.ndarray, y: np.ndarray, seed: int = 1, waves: int = 24) -> np.ndarray:
    """Smooth noise (sum of sinusoids, wavelengths >= 8 px): exact at sub-pixel shifts. (H, W, 3)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(x.shape + (3,), dtype=np.float64)
    for _ in range(waves):
        k = rng.uniform(2 * np.pi / 40, 2 * np.pi / 8)
        angle = rng.uniform(0, 2 * np.pi)
        phase = rng.uniform(0, 2 * np.pi)
        colour = rng.uniform(0.2, 1.0, 3)
        out += colour * np.sin(k * (np.cos(angle) * x + np.sin(angle) * y) + phase)[..., None]
    out = out / waves * 2.5
    return (0.3 * np.exp(out)).astype(np.float32)  # positive, a few values above 1


def edit(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The artist's edit in texture coordinates: a grade and a painted HDR mark."""
    out = image * np.array([1.25, 0.9, 0.7], dtype=np.float32)
    mark = np.exp(-((x - 40.0) ** 2 + (y - 30.0) ** 2) / (2 * 3.0 ** 2))[..., None]
    return (out * (1 - mark) + mark * np.array([4.0, 3.0, 0.5])).astype(np.float32)


def translation_plate(n: int = N) -> tuple[list[np.ndarray], list[np.ndarray]]:
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    frames, truth = [], []
    for t in range(n):
        x, y = xs - VELOCITY[0] * t, ys - VELOCITY[1] * t
        source = texture(x, y)
        frames.append(source)
        truth.append(edit(source, x, y))
    return frames, truth


def square_plate(n: int = N) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A bright square moving right over a static texture: it occludes and disoccludes."""
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    background = texture(xs, ys, seed=3)
    frames, truth = [], []
    for t in range(n):
        x0 = 20 + 5 * t
        inside = ((xs >= x0) & (xs < x0 + 22) & (ys >= 20) & (ys < 44))[..., None]
        sq = texture(xs - 5 * t, ys, seed=7) * 2.0
        frames.append(np.where(inside, sq, background).astype(np.float32))
        # edit: the background turns blue-ish, the square turns red-ish
        truth.append(np.where(inside, sq * np.array([1.6, 0.6, 0.5]),
                              background * np.array([0.6, 0.8, 1.5])).astype(np.float32))
    return frames, truth


@pytest.fixture(scope="module")
def colour() -> Colour:
    return Colour()


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> FlowCache:
    return FlowCache(tmp_path_factory.mktemp("flowcache"))


def write_key(path: Path, image: np.ndarray) -> str:
    write_exr(str(path), image, chromaticities=AP1, aces_container=False)
    return str(path)


def make(tmp: Path, frames: list[np.ndarray], keys: dict[int, np.ndarray], colour: Colour, cache: FlowCache,
         motion: int = 5, structure: int = 5, flow: str = "dis", search: str = "patchmatch") -> PropagateTransform:
    tmp.mkdir(parents=True, exist_ok=True)
    keyframes = [{"frame": f, "image": write_key(tmp / f"key{f}.exr", img), "colorspace": "ACEScg"}
                 for f, img in keys.items()]
    job = parse_job({"plate": {"path": str(tmp / "p.####.exr")}, "output": {"path": str(tmp / "o.####.exr")},
                     "transform": {"name": "propagate", "flow": flow, "search": search}, "keyframes": keyframes,
                     "controls": {"motion": motion, "structure": structure}})
    context = TransformContext(colour=colour, plate=None, device="cpu", source=lambda f: frames[f],  # type: ignore[arg-type]
                               size=(W, H), frames=(0, len(frames) - 1))
    transform = PropagateTransform.from_job(job, context)
    transform.cache = cache
    return transform


def render(transform: PropagateTransform, frames: list[np.ndarray], order=None) -> dict[int, np.ndarray]:
    order = range(len(frames)) if order is None else order
    return {f: transform.apply(f, frames[f]) for f in order}


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    return float(10 * np.log10(peak ** 2 / np.mean((a - b) ** 2)))


def inner(a: np.ndarray, m: int = 6) -> np.ndarray:
    """Leave out a border (content entering the frame is seen by neither keyframe)."""
    return a[m:-m, m:-m]


@pytest.fixture(scope="module")
def translation(tmp_path_factory, colour, cache):
    frames, truth = translation_plate()
    tmp = tmp_path_factory.mktemp("translation")
    transform = make(tmp, frames, {0: truth[0], N - 1: truth[N - 1]}, colour, cache)
    return frames, truth, transform, render(transform, frames)


def test_compose_flow_of_two_translations_adds_them():
    a = torch.zeros(1, 2, 16, 16)
    a[:, 0] = 1.5
    b = torch.zeros(1, 2, 16, 16)
    b[:, 1] = -0.25
    c = compose_flow(a, b)
    assert torch.allclose(c[:, 0], torch.full((1, 16, 16), 1.5)) and torch.allclose(c[:, 1], torch.full((1, 16, 16), -0.25))


def test_keyframes_are_reproduced_exactly(translation, colour):
    frames, truth, transform, out = translation
    for i, key in enumerate(transform.keys):
        expected = load_keyframe_image(key, i, colour, (W, H))
        assert np.array_equal(out[key.frame][..., :3], expected)
        # and that is the artist's image for *this* frame (half-float file precision)
        np.testing.assert_allclose(out[key.frame][..., :3], truth[key.frame], rtol=2e-3, atol=1e-4)


def test_numbered_keyframe_files_are_each_their_own_frame(tmp_path, colour, cache):
    """paint.0000.exr beside paint.0006.exr: each keyframe reads its own file, not the sequence's first."""
    frames, truth = translation_plate()
    keyframes = []
    for f in (0, N - 1):
        keyframes.append({"frame": f, "image": write_key(tmp_path / f"paint.{f:04d}.exr", truth[f]),
                          "colorspace": "ACEScg"})
    job = parse_job({"plate": {"path": str(tmp_path / "p.####.exr")}, "output": {"path": str(tmp_path / "o.####.exr")},
                     "transform": {"name": "propagate", "flow": "dis"}, "keyframes": keyframes})
    context = TransformContext(colour=colour, plate=None, device="cpu", source=lambda f: frames[f],  # type: ignore[arg-type]
                               size=(W, H), frames=(0, N - 1))
    transform = PropagateTransform.from_job(job, context)
    transform.cache = cache
    last = transform.apply(N - 1, frames[N - 1])
    np.testing.assert_allclose(last[..., :3], truth[N - 1], rtol=2e-3, atol=1e-4)


def test_translation_is_propagated_with_small_error(translation):
    frames, truth, transform, out = translation
    scores = []
    for f in range(1, N - 1):
        scores.append(psnr(inner(out[f]), inner(truth[f]), peak=float(truth[f].max())))
        assert np.abs(inner(out[f]) - inner(truth[f])).mean() < 0.02 * float(np.abs(truth[f]).mean()) + 0.01
    print("translation PSNR per frame (dB):", [round(s, 1) for s in scores])
    assert min(scores) > 30.0


def test_hdr_values_survive_and_nothing_is_nan(translation):
    frames, truth, transform, out = translation
    for f, image in out.items():
        assert np.isfinite(image).all()
    mid = out[N // 2]
    assert mid.max() > 3.0  # the painted mark is 4.0 in red
    assert abs(float(mid.max()) - float(truth[N // 2].max())) < 0.5


def test_frame_order_does_not_change_the_result(translation, tmp_path, colour, cache):
    frames, truth, transform, out = translation
    again = make(tmp_path, frames, {0: truth[0], N - 1: truth[N - 1]}, colour, cache)
    reversed_out = render(again, frames, order=list(reversed(range(N))))
    shuffled = make(tmp_path / "s", frames, {0: truth[0], N - 1: truth[N - 1]}, colour, cache)
    shuffled_out = render(shuffled, frames, order=[3, 5, 1, 6, 0, 2, 4])
    for f in range(N):
        assert np.array_equal(out[f], reversed_out[f])
        assert np.array_equal(out[f], shuffled_out[f])


def test_one_keyframe_propagates_both_ways(tmp_path, colour, cache):
    frames, truth = translation_plate()
    transform = make(tmp_path, frames, {3: truth[3]}, colour, cache)
    out = render(transform, frames)
    for f in (0, 1, 5, 6):
        assert psnr(inner(out[f], 10), inner(truth[f], 10), peak=float(truth[f].max())) > 28.0


def test_occluded_regions_take_content_from_the_keyframe_that_sees_them(tmp_path, colour, cache):
    frames, truth = square_plate()
    transform = make(tmp_path, frames, {0: truth[0], N - 1: truth[N - 1]}, colour, cache)
    out = render(transform, frames)
    f = 3
    x0 = 20 + 5 * f
    ys, xs = np.mgrid[0:H, 0:W]
    # Background just right of the square at frame 0 (covered at f=3 ... no: visible at f=3 behind
    # where the square was): disoccluded by f, visible at the last keyframe only.
    behind = (xs >= 20) & (xs < x0) & (ys >= 22) & (ys < 42)
    err = np.abs(out[f] - truth[f])[behind].mean()
    naive = np.abs(frames[f] - truth[f])[behind].mean()  # no edit at all
    print(f"disoccluded region: mean abs error {err:.4f} vs unedited {naive:.4f}")
    assert err < 0.6 * naive  # torch flow: ~0.19; DIS (used here for speed): ~0.50
    assert np.isfinite(out[f]).all()


def _sweep(tmp, frames, truth, colour, cache, **controls):
    transform = make(tmp, frames, {0: truth[0], N - 1: truth[N - 1]}, colour, cache, **controls)
    return render(transform, frames, order=range(1, N - 1))


def test_motion_slider_has_a_monotone_effect(tmp_path, colour, cache):
    """Higher motion follows the source's motion more closely: error at the moving square's edges drops."""
    frames, truth = square_plate()
    errors = {}
    for motion in (1, 5, 9):
        out = _sweep(tmp_path / f"m{motion}", frames, truth, colour, cache, motion=motion)
        errors[motion] = float(np.mean([np.abs(out[f] - truth[f]).mean() for f in out]))
    print("motion 1/5/9 -> mean abs error vs ground truth:", {k: round(v, 4) for k, v in errors.items()})
    assert errors[1] > errors[5] > errors[9]


def test_structure_slider_has_a_monotone_effect(tmp_path, colour, cache):
    """Higher structure shows more of the source frame's own detail (a restyle keyframe): the
    correlation of the result's fine detail with the source frame's rises with the slider."""
    frames, _ = translation_plate()
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    # frame-specific detail the keyframes cannot know: a faint second layer moving the other way
    frames = [f + 0.4 * texture(xs + 2.0 * t, ys, seed=11)[..., :1] for t, f in enumerate(frames)]
    style = [texture(xs - VELOCITY[0] * t, ys - VELOCITY[1] * t, seed=5) for t in range(N)]  # another picture

    def highpass(a):
        t = torch.from_numpy(a).permute(2, 0, 1)[None]
        from engine.filters import gaussian_blur
        return (t - gaussian_blur(t, 2.0))[0].permute(1, 2, 0).numpy()

    def followed(a, b):
        """Normalised correlation of two images' high frequencies (inside the border)."""
        x, y = inner(highpass(a)).ravel(), inner(highpass(b)).ravel()
        return float(np.dot(x - x.mean(), y - y.mean()) / (np.std(x) * np.std(y) * x.size))

    detail = {}
    for structure in (1, 5, 9):
        out = _sweep(tmp_path / f"s{structure}", frames, style, colour, cache, structure=structure)
        detail[structure] = float(np.mean([followed(out[f], frames[f]) for f in out]))
    print("structure 1/5/9 -> how much of the source frame's own detail the result follows (NCC):",
          {k: round(v, 3) for k, v in detail.items()})
    assert detail[1] + 0.03 < detail[5] and detail[5] + 0.1 < detail[9]


def test_pipeline_end_to_end_writes_exrs(tmp_path, monkeypatch):
    import time

    import engine.flow_cache as fc

    monkeypatch.setenv("RETAKE_CACHE", str(tmp_path / "cache"))
    real_write = fc._write_entry
    # Slow cache writes: the run must still end with every entry written.
    monkeypatch.setattr(fc, "_write_entry", lambda path, *arrays: time.sleep(0.3) or real_write(path, *arrays))
    pattern = write_plate(tmp_path / "plate", first=1001, count=4, width=64, height=48)
    from tests.plate_factory import plate_pixels
    from engine.io.header import AP0
    key = plate_pixels(1002, 64, 48) * np.array([1.3, 1.0, 0.8], dtype=np.float32)
    write_exr(str(tmp_path / "key.exr"), key, chromaticities=AP0, aces_container=True)
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({
        "plate": {"path": pattern, "colorspace": "ACES2065-1"},
        "output": {"path": str(tmp_path / "out" / "r.####.exr")},
        "transform": {"name": "propagate"},
        "keyframes": [{"frame": 1002, "image": "key.exr"}],
    }))
    job = parse_job(json.loads(job_file.read_text()), base_dir=tmp_path)
    result = run_job(job, RunOptions(device="cpu"))
    assert result.rendered == [1001, 1002, 1003, 1004]
    from engine.io.exr import read_image
    for frame in range(1001, 1005):
        image = read_image(str(tmp_path / "out" / f"r.{frame}.exr"))
        assert np.isfinite(image).all()
    # the keyframe comes back as itself (through half precision and the AP0 round trip)
    back = read_image(str(tmp_path / "out" / "r.1002.exr"))
    assert np.allclose(back[..., :3], key, rtol=2e-3, atol=2e-3)
    # The flow cache is written in the background; the run ends once its files are all there.
    entries = sorted((tmp_path / "cache" / "flow").rglob("*.npz"))
    assert len(entries) == 3 and not list((tmp_path / "cache").rglob("*.tmp"))


def test_wrong_size_keyframe_is_refused(tmp_path, colour, cache):
    frames, truth = translation_plate(3)
    bad = np.ones((40, 40, 3), dtype=np.float32)
    with pytest.raises(JobError) as info:
        make(tmp_path, frames, {0: bad}, colour, cache)
    text = str(info.value)
    assert "$.keyframes[0].image" in text and "40x40" in text and f"{W}x{H}" in text


def test_same_aspect_keyframe_is_resampled(tmp_path, colour, cache):
    frames, truth = translation_plate(2)
    half = truth[0][::2, ::2].copy()
    transform = make(tmp_path, frames, {0: half}, colour, cache)
    assert transform.apply(0, frames[0]).shape == (H, W, 3)


def test_missing_image_and_nan_keyframes_are_refused(tmp_path, colour, cache):
    frames, truth = translation_plate(2)
    job = parse_job({"plate": {"path": str(tmp_path / "p.####.exr")}, "output": {"path": str(tmp_path / "o.####.exr")},
                     "transform": {"name": "propagate"}, "keyframes": [{"frame": 0}]})
    context = TransformContext(colour=colour, plate=None, device="cpu", source=lambda f: frames[f],  # type: ignore[arg-type]
                               size=(W, H), frames=(0, 1))
    with pytest.raises(JobError, match=r"\$\.keyframes\[0\]"):
        PropagateTransform.from_job(job, context)
    nan = truth[0].copy()
    nan[3, 3, 0] = np.nan
    with pytest.raises(JobError, match="NaN"):
        make(tmp_path, frames, {0: nan}, colour, cache)


def test_64_keyframes_are_propagated_and_65_refused(tmp_path, colour, cache):
    """The engine's limit: 64 keyframes on a 70-frame plate, each reproduced; a 65th is a clear job error."""
    n = 70
    ys, xs = np.mgrid[0:24, 0:32].astype(np.float64)
    frames = [texture(xs - 0.7 * t, ys, seed=2)[..., :3] for t in range(n)]
    keyed = list(range(0, 64))
    keyframes = [{"frame": f, "image": write_key(tmp_path / f"k.{f:04d}.exr", frames[f] * 1.5), "colorspace": "ACEScg"}
                 for f in keyed]
    spec = {"plate": {"path": str(tmp_path / "p.####.exr")}, "output": {"path": str(tmp_path / "o.####.exr")},
            "transform": {"name": "propagate", "flow": "dis"}, "keyframes": keyframes}
    job = parse_job(spec)
    context = TransformContext(colour=colour, plate=None, device="cpu", source=lambda f: frames[f],  # type: ignore[arg-type]
                               size=(32, 24), frames=(0, n - 1))
    transform = PropagateTransform.from_job(job, context)
    transform.cache = cache
    for f in (0, 31, 63):
        np.testing.assert_allclose(transform.apply(f, frames[f]), frames[f] * 1.5, rtol=2e-3, atol=1e-4)
    after = [transform.apply(f, frames[f]) for f in range(64, n)]   # beyond the last key: carried from it
    assert all(np.isfinite(a).all() for a in after)
    assert abs(float(np.mean(after[0])) / float(np.mean(frames[64])) - 1.5) < 0.1
    spec["keyframes"] = keyframes + [{"frame": 65, "image": keyframes[0]["image"]}]
    with pytest.raises(JobError, match="at most 64 keyframes"):
        parse_job(spec)


def test_a_grade_changing_between_keyframes_has_no_seam_where_new_content_enters(tmp_path, colour, cache):
    """A fast pan: the strip entering the frame is seen only by the later keyframe. Its look must
    still be the same mix of the two keyframes' grades as the rest of the frame (no seam)."""
    n = 9
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    frames = [texture(xs + 3.0 * t, ys, seed=5)[..., :3] for t in range(n)]   # new content from the right
    keys = {0: frames[0] * np.float32(0.5), 8: frames[8] * np.float32(2.0)}    # one stop down ... one stop up
    transform = make(tmp_path, frames, keys, colour, cache)
    out = transform.apply(4, frames[4])
    stops = np.log2(np.clip(out, 1e-6, None) / np.clip(frames[4], 1e-6, None)).mean(axis=(0, 2))  # per column
    jumps = np.abs(np.diff(stops[4:-4]))
    assert abs(float(np.median(stops)) - 0.0) < 0.3, stops      # halfway between -1 and +1 stop
    assert jumps.max() < 0.15, f"a seam of {jumps.max():.2f} stops between columns"
    # and no ramp either: the strip only the later keyframe saw has the same mix of looks
    assert abs(float(stops[-16:-4].mean()) - float(np.median(stops))) < 0.15, stops


def test_large_frames_estimate_flow_at_a_bounded_size_and_keep_few_chain_states(tmp_path, colour, cache,
                                                                                   monkeypatch):
    """4K and up: the flow is estimated downscaled and brought back up (here forced on a small plate:
    a 96 px frame with flows at 48 px), the result still follows a sub-pixel translation; and the
    chain states kept per keyframe shrink with the frame's size."""
    from engine.transforms import propagate

    monkeypatch.setattr(propagate, "FLOW_SIDE", 48)
    frames, truth = translation_plate()
    transform = make(tmp_path / "half", frames, {0: truth[0], N - 1: truth[N - 1]}, colour, cache)
    out = render(transform, frames)
    scores = [psnr(inner(out[f]), inner(truth[f]), peak=float(truth[f].max())) for f in range(1, N - 1)]
    print("translation PSNR with flows at half size (dB):", [round(s, 1) for s in scores])
    assert min(scores) > 28.0
    assert transform.max_states == 64
    monkeypatch.setattr(propagate, "CHAIN_BUDGET", W * H * 12 * 10)
    assert make(tmp_path / "tight", frames, {0: truth[0]}, colour, cache).max_states == 10


def test_the_default_flow_is_torch_and_auto_is_dis_on_the_cpu(tmp_path, colour, cache):
    """A job that names no flow gets the torch estimator on any device; "auto" takes OpenCV DIS
    on this CPU-only context."""
    frames, truth = translation_plate()
    spec = {"plate": {"path": str(tmp_path / "p.####.exr")}, "output": {"path": str(tmp_path / "o.####.exr")},
            "transform": {"name": "propagate"},
            "keyframes": [{"frame": 0, "image": write_key(tmp_path / "k.exr", truth[0]), "colorspace": "ACEScg"}]}
    context = TransformContext(colour=colour, plate=None, device="cpu", source=lambda f: frames[f],  # type: ignore[arg-type]
                               size=(W, H), frames=(0, N - 1))
    job = parse_job(spec)
    assert job.transform.params["flow"] == "torch"
    assert PropagateTransform.from_job(job, context).flow_method == "torch"
    auto = parse_job(dict(spec, transform={"name": "propagate", "flow": "auto"}))
    assert PropagateTransform.from_job(auto, context).flow_method == "dis"


def test_no_torch_op_runs_on_the_runs_helper_threads(tmp_path, monkeypatch):
    # The reader, the frame writers and the flow cache's writers work beside the render. A
    # torch kernel on one of them starts a second OpenMP team beside the render's, whose
    # threads spin on the same cores: a cold 960x540 frame went 1.7x slower on 2 CPUs that
    # way. Every thread the run starts records the torch ops dispatched on it; none may be.
    import threading

    from torch.utils._python_dispatch import TorchDispatchMode

    from engine.io.header import AP0

    seen: list[tuple[str, str]] = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append((threading.current_thread().name, str(func)))
            return func(*args, **(kwargs or {}))

    run = threading.Thread.run

    def recorded(thread: threading.Thread) -> None:
        with Record():
            run(thread)

    monkeypatch.setattr(threading.Thread, "run", recorded)
    monkeypatch.setenv("RETAKE_CACHE", str(tmp_path / "cache"))
    pattern = write_plate(tmp_path / "plate", first=1001, count=5, width=96, height=64)
    from tests.plate_factory import plate_pixels
    key = plate_pixels(1001, 48, 32) * np.array([1.3, 1.0, 0.8], dtype=np.float32)
    write_exr(str(tmp_path / "key.exr"), key, chromaticities=AP0, aces_container=True)
    job = parse_job({
        "plate": {"path": pattern, "colorspace": "ACES2065-1"},
        # Half size: the reader's frames are resized too (with torch, so not on its thread).
        "output": {"path": str(tmp_path / "out" / "r.####.exr"), "resolution": "48x32", "compression": "piz"},
        "transform": {"name": "propagate"},
        "keyframes": [{"frame": 1001, "image": str(tmp_path / "key.exr")}],
    })
    result = run_job(job, RunOptions(device="cpu", write_threads=2))
    assert result.rendered == list(range(1001, 1006))
    assert len(list((tmp_path / "cache" / "flow").rglob("*.npz"))) == 4     # the cache's writers did run
    assert not seen, f"torch ops on helper threads: {sorted(set(seen))[:8]}"
