"""The propagation engine on one device against the CPU, in one short run (prints tables; not a test).

    python bench/device_check.py [--device auto|cuda|mps|cpu] [--sizes 960x540,1920x1080] [--frames 6]

Made for the few minutes a lent GPU machine gives (``bench/device_kit.sh run`` calls it
there), and runs the same anywhere, CPU included:

* **parity**: the torch flow pair and a propagated plate of the real Sintel frames at
  960x540, made on the device and on the CPU from the same inputs. The devices' floating
  point differs in its last bits (other kernels, other summation orders), so this reports
  how far apart they land: flow in px, occlusion masks in % of pixels, output in PSNR
  (ACEScct); ``--device cpu`` compares the CPU with itself and must read 0 and "bit for
  bit the same".
* **determinism**: the same plate propagated twice on the device is bit for bit the same
  (the engine's promise: deterministic for a seed on a given device).
* **split**: where a cold frame's time goes on the device, per size: the flow pair (and in
  it the flow cache's put: host work however fast the device, the share left on the
  caller's thread now that the file is written beside it), the frames' content
  digests, the PatchMatch calls, the rest of the synthesis, with the device synchronised around each
  part (so the parts add up, and the total is a little slower than an unsplit run); and
  how many kernels a cold frame launches (``torch.profiler``), the figure a GPU that is
  bound by launches, not arithmetic, follows;
* **graph** (cuda only): ``flow_pair`` eager against its solve replayed from a CUDA graph
  (``engine.cuda_graphs``, ``RETAKE_CUDA_GRAPHS=1``), or what stopped the capture.

Frames/s for the benchmark's table come from ``bench/propagation.py --device ...``; this
says why they are what they are.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import propagation as bench  # noqa: E402  (the benchmark's scenes, edit and transform)
import engine.synth as synth  # noqa: E402
import engine.transforms.propagate as propagate  # noqa: E402
from engine.device import choose_device, describe_device  # noqa: E402
from engine.flow import flow_pair  # noqa: E402
from engine.flow_cache import FlowCache  # noqa: E402
from engine.heap import keep_freed_memory  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _propagated(seq: bench.Sequence, device: torch.device, work: Path, name: str) -> list[np.ndarray]:
    """The inner frames of ``seq`` propagated from its first and last frame's edit, cold cache."""
    n = len(seq.frames)
    truth = {0: bench.edit(seq.frames[0]), n - 1: bench.edit(seq.frames[-1])}
    transform = bench.make_transform(work / name, seq, truth, device, "torch",
                                     FlowCache(work / f"cache-{name}", background=True))   # as `retake run`
    out = [transform.apply(f, seq.frames[f]) for f in range(1, n - 1)]
    transform.close()
    return out


def parity(device: torch.device, frames: int, work: Path) -> None:
    print(f"\n## Parity: {describe_device(device)} against cpu (960x540, real Sintel frames)")
    seq = bench.speed_scenes(960, 540, frames)[1]
    seq = bench.Sequence(seq.name, seq.frames[:frames], [], [])
    mid = len(seq.frames) // 2
    a, b = bench.to_tensor(seq.frames[mid - 1]), bench.to_tensor(seq.frames[mid])
    on_cpu = flow_pair(a, b, "torch")
    on_device = flow_pair(a.to(device), b.to(device), "torch").to("cpu")
    print(f"{'what':<44} {'mean':>10} {'p99':>10} {'max':>10}")
    for name, x, y in (("forward flow |device - cpu| px", on_device.forward, on_cpu.forward),
                       ("backward flow |device - cpu| px", on_device.backward, on_cpu.backward)):
        d = (x - y).norm(dim=1).flatten()
        print(f"{name:<44} {float(d.mean()):>10.5f} {float(torch.quantile(d[::7], 0.99)):>10.5f} "
              f"{float(d.max()):>10.5f}")
    for name, x, y in (("forward occlusion mask differs, % of pixels", on_device.occlusion_forward,
                        on_cpu.occlusion_forward),
                       ("backward occlusion mask differs, % of pixels", on_device.occlusion_backward,
                        on_cpu.occlusion_backward)):
        print(f"{name:<44} {100.0 * float((x != y).float().mean()):>10.4f}")
    cpu_out = _propagated(seq, torch.device("cpu"), work, "parity-cpu")
    first = _propagated(seq, device, work, "parity-device-1")
    second = _propagated(seq, device, work, "parity-device-2")
    same = all(np.array_equal(x, y) for x, y in zip(first, second))
    if all(np.array_equal(x, y) for x, y in zip(first, cpu_out)):
        print(f"propagated {len(first)} frames: device and cpu bit for bit the same")
    else:
        psnrs = [bench.psnr(bench.cct(x), bench.cct(y)) for x, y in zip(first, cpu_out)]
        print(f"propagated {len(first)} frames: device vs cpu PSNR (ACEScct) min {min(psnrs):.2f} dB, "
              f"mean {float(np.mean(psnrs)):.2f} dB")
    print(f"determinism: the same plate twice on {device.type}: "
          f"{'bit for bit the same' if same else 'DIFFERENT (a bug: the engine promises the same result)'}")


class _Timer:
    """Wall time of the wrapped engine functions, the device synchronised before and after each call.

    A function timed inside another timed one counts in both (PatchMatch inside synthesis)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = {}

    def wrap(self, module: object, name: str, key: str) -> None:
        inner: Callable = getattr(module, name)

        def timed(*args, **kwargs):
            _sync(self.device)
            t0 = time.perf_counter()
            out = inner(*args, **kwargs)
            _sync(self.device)
            self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - t0
            return out

        setattr(module, name, timed)


@contextmanager
def _timed_engine(device: torch.device) -> Iterator[_Timer]:
    """The propagate transform's flow (its cache write), digests and synthesis (its PatchMatch), timed in place."""
    timer = _Timer(device)
    saved = [(propagate, "cached_flow_pair"), (propagate, "synthesise"), (synth, "patchmatch_repair"),
             (FlowCache, "put"), (propagate, "frame_digest")]
    originals = [getattr(m, n) for m, n in saved]
    timer.wrap(propagate, "cached_flow_pair", "flow pair (with cache write)")
    timer.wrap(FlowCache, "put", "cache write")       # the caller's share: the rest is on the writer's thread
    timer.wrap(propagate, "frame_digest", "digest")
    timer.wrap(synth, "patchmatch_repair", "PatchMatch")
    timer.wrap(propagate, "synthesise", "synthesis (PatchMatch included)")
    try:
        yield timer
    finally:
        for (m, n), f in zip(saved, originals):
            setattr(m, n, f)


def split(device: torch.device, sizes: list[tuple[int, int]], frames: int, work: Path) -> None:
    print(f"\n## Split of a cold frame on {describe_device(device)} (ms a frame; Sintel frames, keys at the "
          f"first and last frame; device synchronised around each part)")
    print(f"{'size':>10} {'flow pair':>10} {'of it, cache put':>17} {'digests':>8} {'PatchMatch':>11} "
          f"{'synthesis':>10} {'other':>8} {'total':>8} "
          f"{'frames/s':>9} {'kernels: flow pair + synthesis':>31}")
    for w, h in sizes:
        seq = bench.speed_scenes(w, h, frames)[1]
        seq = bench.Sequence(seq.name, seq.frames[:frames], [], [])
        n = len(seq.frames)
        _propagated(seq, device, work, f"warmup-{w}")      # first calls: kernel caches, allocator
        inner = n - 2
        with _timed_engine(device) as timer:
            _sync(device)
            t0 = time.perf_counter()
            _propagated(seq, device, work, f"split-{w}")
            _sync(device)
            total = time.perf_counter() - t0
        s = {k: v / inner * 1e3 for k, v in timer.seconds.items()}
        flow_ms = s.get("flow pair (with cache write)", 0.0)
        pm_ms = s.get("PatchMatch", 0.0)
        synth_ms = s.get("synthesis (PatchMatch included)", 0.0)
        per_frame = total / inner * 1e3
        put_ms, digest_ms = s.get("cache write", 0.0), s.get("digest", 0.0)
        print(f"{w:>5}x{h:<4} {flow_ms:>10.1f} {put_ms:>17.1f} {digest_ms:>8.1f} {pm_ms:>11.1f} {synth_ms:>10.1f} "
              f"{per_frame - flow_ms - synth_ms - digest_ms:>8.1f} {per_frame:>8.1f} {1e3 / per_frame:>9.2f} "
              f"{_kernels_per_frame(seq, device, work, w):>31}")


def _launches(device: torch.device, run: Callable[[], object]) -> int:
    """Kernels ``run`` launches on the device, from torch.profiler. On a CPU, the aten ops that
    do arithmetic (views, shapes and allocation left out): what a GPU would launch."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        run()
        _sync(device)
    events = prof.events()
    if device.type == "cuda":
        return sum(1 for e in events if e.device_type == torch.autograd.DeviceType.CUDA)
    return sum(1 for e in events if e.name.startswith("aten::") and e.name not in _NOT_ARITHMETIC
               and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")))


_NOT_ARITHMETIC = frozenset((
    "aten::empty", "aten::view", "aten::slice", "aten::select", "aten::as_strided", "aten::reshape",
    "aten::unsqueeze", "aten::squeeze", "aten::expand", "aten::permute", "aten::t", "aten::transpose",
    "aten::detach", "aten::alias", "aten::_reshape_alias", "aten::unbind", "aten::split", "aten::chunk",
    "aten::resize_", "aten::set_", "aten::lift_fresh", "aten::is_nonzero", "aten::item",
    "aten::_local_scalar_dense", "aten::to", "aten::_to_copy", "aten::contiguous", "aten::empty_like",
    "aten::empty_strided", "aten::zeros_like", "aten::result_type", "aten::narrow", "aten::numpy_T"))


def _kernels_per_frame(seq: bench.Sequence, device: torch.device, work: Path, w: int) -> str:
    """Kernels of one flow pair + one frame's synthesis (its flows made already), on the device."""
    a, b = bench.to_tensor(seq.frames[1]).to(device), bench.to_tensor(seq.frames[2]).to(device)
    pair = _launches(device, lambda: flow_pair(a, b, "torch"))
    n = len(seq.frames)
    truth = {0: bench.edit(seq.frames[0]), n - 1: bench.edit(seq.frames[-1])}
    transform = bench.make_transform(work / f"kernels-{w}", seq, truth, device, "torch",
                                     FlowCache(work / f"cache-kernels-{w}"))
    transform.apply(1, seq.frames[1])              # makes every pair between the keyframes
    synthesis = _launches(device, lambda: transform.apply(2, seq.frames[2]))
    return f"{pair}+{synthesis}"


def graph(device: torch.device, sizes: list[tuple[int, int]], frames: int) -> None:
    """``flow_pair`` eager against its solve replayed from a CUDA graph (engine.cuda_graphs)."""
    print(f"\n## flow_pair with its solve replayed from a CUDA graph ({describe_device(device)}; "
          f"RETAKE_CUDA_GRAPHS=1; ms a pair, best of 5; Sintel frames)")
    if device.type != "cuda":
        print("cuda only: skipped")
        return
    print(f"{'size':>10} {'eager':>8} {'replayed':>9} {'max |replayed - eager| px':>26}  capture")
    saved = os.environ.get("RETAKE_CUDA_GRAPHS")
    try:
        for w, h in sizes:
            seq = bench.speed_scenes(w, h, frames)[1]
            mid = len(seq.frames) // 2
            a, b = bench.to_tensor(seq.frames[mid - 1]).to(device), bench.to_tensor(seq.frames[mid]).to(device)

            def best_ms() -> float:
                times = []
                for _ in range(5):
                    _sync(device)
                    t0 = time.perf_counter()
                    flow_pair(a, b, "torch")
                    _sync(device)
                    times.append(time.perf_counter() - t0)
                return min(times) * 1e3

            os.environ.pop("RETAKE_CUDA_GRAPHS", None)
            eager_out = flow_pair(a, b, "torch").forward
            eager = best_ms()
            os.environ["RETAKE_CUDA_GRAPHS"] = "1"
            try:
                replayed_out = flow_pair(a, b, "torch").forward      # captures
                replayed = best_ms()
                diff = float((replayed_out - eager_out).abs().max())
                print(f"{w:>5}x{h:<4} {eager:>8.1f} {replayed:>9.1f} {diff:>26.6f}  ok")
            except Exception as error:  # noqa: BLE001 - what stops a capture is the finding
                print(f"{w:>5}x{h:<4} {eager:>8.1f} {'-':>9} {'-':>26}  failed: "
                      f"{type(error).__name__}: {str(error).splitlines()[0][:160]}")
    finally:
        if saved is None:
            os.environ.pop("RETAKE_CUDA_GRAPHS", None)
        else:
            os.environ["RETAKE_CUDA_GRAPHS"] = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    ap.add_argument("--sizes", default="960x540,1920x1080", help="split sizes, WxH,WxH")
    ap.add_argument("--frames", type=int, default=6, help="frames of the Sintel plate propagated (4-10)")
    ap.add_argument("--only", default="parity,split,graph")
    args = ap.parse_args()
    keep_freed_memory()
    torch.manual_seed(0)
    device = choose_device(args.device)
    frames = min(max(args.frames, 4), 10)
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",") if s]
    tf32 = (f", TF32 matmul {torch.backends.cuda.matmul.allow_tf32} cudnn {torch.backends.cudnn.allow_tf32}"
            if device.type == "cuda" else "")
    print(f"# bench/device_check.py on {describe_device(device)}, torch {torch.__version__}"
          f"{', CUDA ' + str(torch.version.cuda) if device.type == 'cuda' else ''}, "
          f"{torch.get_num_threads()} CPU threads{tf32}")
    with tempfile.TemporaryDirectory(prefix="retake-device-") as tmp:
        for name in args.only.split(","):
            name = name.strip()
            if name == "parity":
                parity(device, frames, Path(tmp))
            elif name == "split":
                split(device, sizes, frames, Path(tmp))  # type: ignore[arg-type]
            elif name == "graph":
                graph(device, sizes, frames)  # type: ignore[arg-type]
            else:
                raise SystemExit(f"--only: unknown section {name!r}; use parity, split, graph")


if __name__ == "__main__":
    main()
