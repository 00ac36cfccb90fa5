"""Propagation benchmark: quality against ground truth, speed, memory, and the sliders (prints tables).

    .venv/bin/python bench/propagation.py [--quick] [--device auto|cpu|cuda|mps] [--flow auto|torch|dis]
                                          [--only quality,controls,speed,memory]

Never part of the test suite. Every figure comes from this run; ratios are against
baselines measured in the same run, on the same flows.

Quality, on ground truth built from real pictures (``../shared/data``):

* ``moving``: the real HDR photograph ``exr/testimages/Cannon.exr`` filmed by a virtual
  camera that rolls 6 degrees, pushes in 15 % and pans, with a square cut from a real
  *Sintel* frame crossing it (occluding and disoccluding), 25 frames at 640x360
  (--quick: 17 frames at 480x270). The motion and its occlusions are known exactly.
* ``sintel``: the 10 real consecutive frames ``sintel/frame_0016-0025.png`` (1024x436;
  --quick: 512x218), real motion, occlusion and motion blur.

The "edit" is a known local filter applied to every source frame (an edge-preserving
stylisation with inked edges, then a warm grade with more saturation, all in ACEScct
through OpenColorIO); the edited frames are the ground truth and the keyframes are the
edit at every 8th frame. Reported on the frames that are not keyframes: PSNR and SSIM
(in ACEScct code values, peak 1), and on all consecutive pairs the temporal warping
error of Lai et al. 2018 (mean squared difference between a frame and the next frame
warped back by the flow, occluded pixels masked by the forward-backward check; the
known flow and occlusion for ``moving``, the engine's flow on the source for ``sintel``).
Baselines: the nearest keyframe copied; the two neighbouring keyframes warped along the
same chained flow and blended linearly by temporal distance.
Retake is run with each ``search`` of the propagate transform: "patchmatch" (the
default: PatchMatch where the flow's match is inexact), "full" (PatchMatch at every
pixel) and "flow" (along the flow alone).

Controls: motion 1/5/9 and structure 1/5/9 on ``moving`` (PSNR, warping error against the
ground truth's, and the high-frequency distance to the source frame).

Speed: frames/s at 960x540 and 1920x1080 (--quick: 960x540 only), flow alone (one
forward+backward pair per frame, the pipeline's sequential cost) and full synthesis
(flow included, cache empty; and again with the flow cache warm), for each ``search``,
on two scenes with keyframes at both ends: ``moving`` squeezed into 6 frames (the
occluder crosses at about 130 px a frame: the harshest case for PatchMatch) and the 10
real ``sintel`` frames resized to the size (real footage). ``--repeat N`` prints the best of N
runs of each figure (cold runs each with a new, empty cache).

``--flow`` as in a job: ``torch`` (the default), ``dis``, or ``auto`` (torch on a GPU,
DIS on the CPU).

End to end (``--only pipeline``, not in the default set): frames/s of ``run_job`` itself,
what ``retake run`` does (read a PIZ EXR plate, ACES2065-1 -> ACEScg, propagate, write
ACES2065-1 PIZ EXR), on the 10 Sintel frames resized to 960x540 and 1920x1080 with the
edit keyed at both ends; cold (empty flow cache) and warm; everything on the render thread
against the next frame read ahead and the frames written behind (the default), in the
same run. On a GPU this is the figure a user sees; the speed table is the engine's alone.

Memory: peak resident memory of ``retake run`` (a child process, the real pipeline), and
on cuda the device's peak allocation too, on a 320x180 plate of 48 vs 480 frames with a
keyframe every 8 frames (--quick: 24 vs 240).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from engine.colour import Colour  # noqa: E402
from engine.device import choose_device, describe_device  # noqa: E402
from engine.flow import flow_pair, resolve_flow_method, warp  # noqa: E402
from engine.flow_cache import FlowCache  # noqa: E402
from engine.heap import keep_freed_memory  # noqa: E402
from engine.io.aces_exr import write_exr  # noqa: E402
from engine.io.header import AP0, AP1  # noqa: E402
from engine.io.plates import open_plate  # noqa: E402
from engine.job import parse_job  # noqa: E402
from engine.filters import gaussian_blur  # noqa: E402
from engine.transforms import TransformContext  # noqa: E402
from engine.transforms.propagate import PropagateTransform  # noqa: E402
from peak_memory import peak_rss_mib  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
KEY_EVERY = 8
COLOUR = Colour()


# --------------------------------------------------------------------------- pictures

def read_working(path: Path) -> np.ndarray:
    """A still from ../shared/data as (H, W, 3) float32 ACEScg (its colour space as the file says)."""
    if not path.exists():
        raise SystemExit(f"bench/propagation.py needs {path} (../shared/data beside the repository)")
    with open_plate(str(path)) as still:
        pixels = still.read(still.info.first)[..., :3]
        space = COLOUR.colorspace_for_header(still.info.header)
    return np.ascontiguousarray(COLOUR.to_working(np.ascontiguousarray(pixels, dtype=np.float32), space))


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) -> (1, 3, H, W) float32."""
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None].contiguous()


def to_image(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t[0].permute(1, 2, 0).cpu().numpy(), dtype=np.float32)


def resized(image: np.ndarray, w: int, h: int) -> np.ndarray:
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if w < image.shape[1] else cv2.INTER_CUBIC)


@dataclass
class Sequence:
    """Source frames (H, W, 3) ACEScg and, per consecutive pair, the flow t -> t+1 (1, 2, H, W)
    with the mask of pixels whose correspondence is known and visible (1, 1, H, W) bool, and
    for known motion the flow t+1 -> t as well."""

    name: str
    frames: list[np.ndarray]
    flows: list[torch.Tensor]
    masks: list[torch.Tensor]
    backward: list[torch.Tensor] | None = None   # t+1 -> t, when the motion is known


def moving_scene(count: int, W: int, H: int, roll_deg: float = 6.0, push: float = 0.15,
                 pan: tuple[float, float] = (-40.0, 14.0)) -> Sequence:
    """Cannon.exr seen by a rolling, pushing, panning camera, with a Sintel square crossing it."""
    bg = to_tensor(read_working(DATA / "exr" / "testimages" / "Cannon.exr"))
    th, tw = bg.shape[-2:]
    occ_src = read_working(DATA / "sintel" / "frame_0020.png")
    side = int(0.42 * H)
    oy, ox = occ_src.shape[0] // 2 - side // 2, occ_src.shape[1] // 2 - side // 2 - 120
    occluder = to_tensor(occ_src[oy:oy + side, ox:ox + side])
    # The square enters on the left and leaves on the right half-way across, at a steady speed.
    speed = (W * 0.7) / (count - 1)
    oy0 = int(0.30 * H)
    # Texture pixels per screen pixel so the whole frame stays inside the photograph at any roll.
    base = 0.9 * min(tw / W, th / H) / 1.0

    ys, xs = torch.meshgrid(torch.arange(float(H)), torch.arange(float(W)), indexing="ij")
    c = torch.tensor([(W - 1) / 2, (H - 1) / 2]).view(2, 1, 1)
    ct = torch.tensor([(tw - 1) / 2, (th - 1) / 2]).view(2, 1, 1)

    def camera(t: int) -> tuple[torch.Tensor, torch.Tensor]:
        a = t / (count - 1)
        theta = math.radians(roll_deg) * a
        scale = (1.0 + push * a) / base          # screen px per texture px
        rot = torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        return scale * rot, torch.tensor(pan).view(2, 1) * a

    def screen_to_texture(t: int, p: torch.Tensor) -> torch.Tensor:
        m, b = camera(t)
        q = (p - c).reshape(2, -1) - b
        return (torch.linalg.inv(m) @ q).reshape(p.shape) + ct

    def texture_to_screen(t: int, u: torch.Tensor) -> torch.Tensor:
        m, b = camera(t)
        return (m @ (u - ct).reshape(2, -1) + b).reshape(u.shape) + c

    def occluder_x(t: int) -> float:
        return -side * 0.5 + speed * t

    P = torch.stack([xs, ys])
    frames, flows, masks, backward = [], [], [], []
    inside_prev = None
    for t in range(count):
        u = screen_to_texture(t, P)
        grid = torch.stack([u[0] / (tw - 1) * 2 - 1, u[1] / (th - 1) * 2 - 1], dim=-1)[None]
        frame = F.grid_sample(bg, grid, mode="bicubic", padding_mode="border", align_corners=True)
        x0 = occluder_x(t)
        inside = (xs >= x0) & (xs < x0 + side) & (ys >= oy0) & (ys < oy0 + side)
        # Sub-pixel placement of the square's content: sample it at (x - x0, y - oy0).
        og = torch.stack([(xs - x0) / (side - 1) * 2 - 1, (ys - oy0) / (side - 1) * 2 - 1], dim=-1)[None]
        occ = F.grid_sample(occluder, og, mode="bicubic", padding_mode="border", align_corners=True)
        frame = torch.where(inside[None, None], occ, frame)
        frames.append(to_image(frame.clamp_min(0.0)))
        if t > 0:
            # flow (t-1) -> t, from the known motion
            u_prev = screen_to_texture(t - 1, P)
            dest = texture_to_screen(t, u_prev)
            flow = dest - P
            flow = torch.where(inside_prev[None], torch.tensor([speed, 0.0]).view(2, 1, 1), flow)
            dest = P + flow
            in_frame = (dest[0] >= 0) & (dest[0] <= W - 1) & (dest[1] >= 0) & (dest[1] <= H - 1)
            x1 = occluder_x(t)
            covered = (dest[0] >= x1 - 1) & (dest[0] < x1 + side + 1) & (dest[1] >= oy0 - 1) & (dest[1] < oy0 + side + 1)
            edge = _dilate(inside_prev, 1) & ~_erode(inside_prev, 1)   # mixed pixels at the square's border
            valid = in_frame & (inside_prev | ~covered) & ~edge
            flows.append(flow[None])
            masks.append(valid[None, None])
            # and t -> (t-1), for oracle runs
            back = texture_to_screen(t - 1, screen_to_texture(t, P)) - P
            back = torch.where(inside[None], torch.tensor([-speed, 0.0]).view(2, 1, 1), back)
            backward.append(back[None])
        inside_prev = inside
    return Sequence("moving", frames, flows, masks, backward)


def _dilate(m: torch.Tensor, r: int) -> torch.Tensor:
    return F.max_pool2d(m[None, None].float(), 2 * r + 1, 1, r)[0, 0] > 0.5


def _erode(m: torch.Tensor, r: int) -> torch.Tensor:
    return ~_dilate(~m, r)


def sintel_scene(W: int, H: int, flow: str, device: torch.device) -> Sequence:
    frames = [resized(read_working(DATA / "sintel" / f"frame_{i:04d}.png"), W, H) for i in range(16, 26)]
    flows, masks = [], []
    for a, b in zip(frames, frames[1:]):
        pair = flow_pair(to_tensor(a).to(device), to_tensor(b).to(device), flow)
        flows.append(pair.forward.cpu())
        masks.append(~pair.occlusion_forward.cpu())
    return Sequence("sintel", frames, flows, masks)


# --------------------------------------------------------------------------- the edit

def edit(frame: np.ndarray) -> np.ndarray:
    """The known local "restyle": (H, W, 3) ACEScg -> (H, W, 3) ACEScg.

    In ACEScct (OpenColorIO): edge-preserving smoothing (bilateral), inked edges, then a warm
    grade with 1.3x saturation. Local and deterministic, so every frame's truth is known.
    """
    cct = COLOUR.convert(np.ascontiguousarray(frame), "ACEScg", "ACEScct").astype(np.float32)
    smooth = cv2.bilateralFilter(cct, d=7, sigmaColor=0.06, sigmaSpace=3.0)
    luma = smooth @ np.array([0.2722, 0.6741, 0.0537], dtype=np.float32)
    gx = cv2.Sobel(luma, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(luma, cv2.CV_32F, 0, 1, ksize=3)
    ink = np.clip((np.hypot(gx, gy) - 0.08) * 2.0, 0.0, 0.25)[..., None]
    styled = smooth - ink
    grey = (styled @ np.array([0.2722, 0.6741, 0.0537], dtype=np.float32))[..., None]
    graded = grey + 1.3 * (styled - grey) + np.array([0.03, 0.0, -0.03], dtype=np.float32)
    return COLOUR.convert(np.ascontiguousarray(graded, dtype=np.float32), "ACEScct", "ACEScg").astype(np.float32)


# --------------------------------------------------------------------------- metrics

def cct(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) ACEScg -> (1, 3, H, W) ACEScct code values (OpenColorIO)."""
    return to_tensor(COLOUR.convert(np.ascontiguousarray(image, dtype=np.float32), "ACEScg", "ACEScct"))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return 10.0 * math.log10(1.0 / max(mse, 1e-12))


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM of (1, C, H, W) images with data range 1 (Gaussian window, sigma 1.5)."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mu_a, mu_b = gaussian_blur(a, 1.5), gaussian_blur(b, 1.5)
    var_a = gaussian_blur(a * a, 1.5) - mu_a ** 2
    var_b = gaussian_blur(b * b, 1.5) - mu_b ** 2
    cov = gaussian_blur(a * b, 1.5) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return float(s.mean())


def warping_error(outputs: list[torch.Tensor], seq: Sequence) -> float:
    """Lai et al. 2018: mean over pairs of sum M |O_t - warp(O_t+1, F_t->t+1)|^2 / sum M (ACEScct)."""
    errors = []
    for t, (flow, mask) in enumerate(zip(seq.flows, seq.masks)):
        back = warp(outputs[t + 1], flow)
        m = mask.float()
        errors.append(float((((outputs[t] - back) ** 2).mean(dim=1, keepdim=True) * m).sum() / m.sum().clamp_min(1)))
    return float(np.mean(errors))


def highpass_distance(outputs: list[torch.Tensor], sources: list[torch.Tensor], frames: list[int]) -> float:
    """Mean |highpass(output) - highpass(source)| in ACEScct: how much of the source's own detail is not followed."""
    return float(np.mean([float(((outputs[f] - gaussian_blur(outputs[f], 2.0))
                                 - (sources[f] - gaussian_blur(sources[f], 2.0))).abs().mean()) for f in frames]))


# --------------------------------------------------------------------------- methods

def make_transform(folder: Path, seq: Sequence, keys: dict[int, np.ndarray], device: torch.device, flow: str,
                   cache: FlowCache, motion: int = 5, structure: int = 5, search: str = "patchmatch") -> PropagateTransform:
    folder.mkdir(parents=True, exist_ok=True)
    keyframes = []
    for f, image in keys.items():
        path = folder / f"key.{f:04d}.exr"
        write_exr(str(path), image, chromaticities=AP1, aces_container=False)
        keyframes.append({"frame": f, "image": str(path), "colorspace": "ACEScg"})
    job = parse_job({"plate": {"path": str(folder / "plate.####.exr")}, "output": {"path": str(folder / "out.####.exr")},
                     "transform": {"name": "propagate", "flow": flow, "search": search}, "keyframes": keyframes,
                     "controls": {"motion": motion, "structure": structure}})
    h, w = seq.frames[0].shape[:2]
    context = TransformContext(colour=COLOUR, plate=None, device=str(device),  # type: ignore[arg-type]
                               source=lambda f: seq.frames[f], size=(w, h), frames=(0, len(seq.frames) - 1))
    transform = PropagateTransform.from_job(job, context)
    transform.cache = cache
    return transform


def run_methods(seq: Sequence, truth: list[np.ndarray], device: torch.device, flow: str, cache: FlowCache,
                folder: Path, motion: int = 5, structure: int = 5,
                baselines: bool = True) -> dict[str, list[np.ndarray]]:
    """Outputs per method: "retake propagate" (the default search), and with ``baselines`` the
    other searches ("search full", "search flow"), the nearest keyframe and the flow-warp blend."""
    n = len(seq.frames)
    key_frames = list(range(0, n, KEY_EVERY))
    keys = {f: truth[f] for f in key_frames}
    transform = make_transform(folder, seq, keys, device, flow, cache, motion, structure)
    out: dict[str, list[np.ndarray]] = {"retake propagate": []}
    others: dict[str, PropagateTransform] = {}
    if baselines:
        for search in ("full", "flow"):
            others[f"  search {search}"] = make_transform(folder / search, seq, keys, device, flow, cache, motion,
                                                         structure, search=search)
            out[f"  search {search}"] = []
        out["nearest keyframe"] = []
        out["flow-warp blend"] = []
    for f in range(n):
        out["retake propagate"].append(transform.apply(f, seq.frames[f]))
        if not baselines:
            continue
        for name, other in others.items():
            out[name].append(other.apply(f, seq.frames[f]))
        nearest = min(key_frames, key=lambda k: (abs(k - f), k))
        out["nearest keyframe"].append(truth[nearest])
        if f in keys:
            out["flow-warp blend"].append(truth[f])
            continue
        dirs = transform.directions(f)
        total = sum(d.temporal for d in dirs)
        with torch.no_grad():
            blend = sum(d.temporal / total * warp(d.key_image, d.chain.flow) for d in dirs)
        out["flow-warp blend"].append(to_image(blend))
    return out


def score(outputs: list[np.ndarray], truth_cct: list[torch.Tensor], seq: Sequence) -> dict[str, float]:
    out_cct = [cct(o) for o in outputs]
    others = [f for f in range(len(outputs)) if f % KEY_EVERY != 0]
    return {"psnr": float(np.mean([psnr(out_cct[f], truth_cct[f]) for f in others])),
            "ssim": float(np.mean([ssim(out_cct[f], truth_cct[f]) for f in others])),
            "warp": warping_error(out_cct, seq),
            "nan": float(sum(int(np.isnan(o).sum()) for o in outputs))}


# --------------------------------------------------------------------------- sections

def quality(args: argparse.Namespace, device: torch.device, work: Path) -> None:
    print("\n## Quality (PSNR/SSIM on non-key frames, ACEScct; warping error x1e-3, Lai et al. 2018)")
    scenes = []
    if args.quick:
        scenes.append(moving_scene(17, 480, 270))
        scenes.append(sintel_scene(512, 218, args.flow, device))
    else:
        scenes.append(moving_scene(25, 640, 360))
        scenes.append(sintel_scene(1024, 436, args.flow, device))
    print(f"{'scene':<8} {'size':>9} {'frames':>6} {'method':<18} {'PSNR dB':>8} {'SSIM':>7} {'warp err':>9} "
          f"{'warp/GT':>8} {'NaN':>4}")
    for seq in scenes:
        truth = [edit(f) for f in seq.frames]
        truth_cct = [cct(t) for t in truth]
        gt_warp = warping_error(truth_cct, seq)
        cache = FlowCache(work / f"cache-{seq.name}")
        t0 = time.perf_counter()
        results = run_methods(seq, truth, device, args.flow, cache, work / f"q-{seq.name}")
        seconds = time.perf_counter() - t0
        h, w = seq.frames[0].shape[:2]
        scores = {}
        for method, outputs in results.items():
            s = score(outputs, truth_cct, seq)
            scores[method] = s
            print(f"{seq.name:<8} {w:>4}x{h:<4} {len(seq.frames):>6} {method:<18} {s['psnr']:>8.2f} {s['ssim']:>7.4f} "
                  f"{s['warp'] * 1e3:>9.3f} {s['warp'] / gt_warp:>8.2f} {int(s['nan']):>4}")
        print(f"{seq.name:<8} {w:>4}x{h:<4} {len(seq.frames):>6} {'ground truth':<18} {'-':>8} {'-':>7} "
              f"{gt_warp * 1e3:>9.3f} {1.0:>8.2f}")
        base = scores["flow-warp blend"]["psnr"]
        gains = ", ".join(f"{name.strip()} {scores[name]['psnr'] - base:+.2f} dB"
                          for name in ("retake propagate", "  search full", "  search flow"))
        print(f"{seq.name:<8} vs flow-warp blend: {gains}; retake vs nearest keyframe: "
              f"{scores['retake propagate']['psnr'] - scores['nearest keyframe']['psnr']:+.2f} dB; "
              f"all methods {seconds:.1f} s (flow included)")


def controls(args: argparse.Namespace, device: torch.device, work: Path) -> None:
    print("\n## Controls (moving scene; structure at 5 for the motion rows, motion at 5 for the structure rows)")
    seq = moving_scene(17, 480, 270) if args.quick else moving_scene(25, 640, 360)
    truth = [edit(f) for f in seq.frames]
    truth_cct = [cct(t) for t in truth]
    src_cct = [cct(f) for f in seq.frames]
    gt_warp = warping_error(truth_cct, seq)
    others = [f for f in range(len(seq.frames)) if f % KEY_EVERY != 0]
    cache = FlowCache(work / "cache-controls")
    print(f"{'control':<10} {'value':>5} {'PSNR dB':>8} {'warp/GT':>8} {'HF dist to source':>18}")
    for name in ("motion", "structure"):
        for value in (1, 5, 9):
            sliders = {"motion": 5, "structure": 5, name: value}
            outputs = run_methods(seq, truth, device, args.flow, cache, work / f"c-{name}{value}",
                                  baselines=False, **sliders)["retake propagate"]
            out_cct = [cct(o) for o in outputs]
            p = float(np.mean([psnr(out_cct[f], truth_cct[f]) for f in others]))
            print(f"{name:<10} {value:>5} {p:>8.2f} {warping_error(out_cct, seq) / gt_warp:>8.2f} "
                  f"{highpass_distance(out_cct, src_cct, others) * 1e3:>18.3f}")


def speed_scenes(w: int, h: int, frames: int) -> list[Sequence]:
    """The speed scenes at w x h: ``moving`` in ``frames`` frames and the real Sintel frames (no flows)."""
    sintel = [resized(read_working(DATA / "sintel" / f"frame_{i:04d}.png"), w, h) for i in range(16, 26)]
    return [moving_scene(frames, w, h), Sequence("sintel", sintel, [], [])]


def speed(args: argparse.Namespace, device: torch.device, work: Path) -> None:
    repeat = max(1, args.repeat)
    best = f"; the best of {repeat} runs" if repeat > 1 else ""
    print(f"\n## Speed on {describe_device(device)} (frames/s; flow {args.flow}; keys at the first and last frame{best})")
    sizes = [(960, 540)] if args.quick else [(960, 540), (1920, 1080)]
    print(f"{'size':>10} {'scene':>7} {'frames':>6} {'search':>10} {'flow alone':>11} {'synthesis, cold cache':>22} "
          f"{'synthesis, warm cache':>22} {'device peak MiB':>16}")
    for w, h in sizes:
        for seq in speed_scenes(w, h, args.speed_frames):
            n = len(seq.frames)
            truth = {0: edit(seq.frames[0]), n - 1: edit(seq.frames[-1])}
            pairs = [(to_tensor(a).to(device), to_tensor(b).to(device)) for a, b in zip(seq.frames, seq.frames[1:])]
            flow_pair(*pairs[0], args.flow)  # warm-up
            flow_fps = 0.0
            for _ in range(repeat):
                _sync(device)
                t0 = time.perf_counter()
                for a, b in pairs:
                    flow_pair(a, b, args.flow)
                _sync(device)
                flow_fps = max(flow_fps, len(pairs) / (time.perf_counter() - t0))
            inner_frames = range(1, n - 1)
            for search in ("patchmatch", "full", "flow"):
                rates = {"cold": 0.0, "warm": 0.0}
                # Cold: an empty cache of this search's own, a new one each run; warm: the last one again.
                runs = [("cold", r) for r in range(repeat)] + [("warm", repeat - 1)] * repeat
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                for run, r in runs:
                    # As `retake run` has it: the cache's files written beside the frames, all of
                    # them on disk before the clock stops.
                    cache = FlowCache(work / f"cache-speed-{w}-{seq.name}-{search}-{r}", background=True)
                    transform = make_transform(work / f"s-{w}-{seq.name}-{search}-{run}-{r}", seq, truth, device,
                                               args.flow, cache, search=search)
                    _sync(device)
                    t0 = time.perf_counter()
                    for f in inner_frames:
                        transform.apply(f, seq.frames[f])
                    transform.close()
                    _sync(device)
                    rates[run] = max(rates[run], len(inner_frames) / (time.perf_counter() - t0))
                peak = torch.cuda.max_memory_allocated() / 2 ** 20 if device.type == "cuda" else float("nan")
                print(f"{w:>5}x{h:<4} {seq.name:>7} {n:>6} {search:>10} {flow_fps:>11.2f} {rates['cold']:>22.2f} "
                      f"{rates['warm']:>22.2f} {peak:>16.0f}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def memory(args: argparse.Namespace, device: torch.device, work: Path) -> None:
    counts = (24, 240) if args.quick else (48, 480)
    print(f"\n## Memory: peak host (resident set) and device memory of `retake run` (320x180 plate, "
          f"a keyframe every {KEY_EVERY} frames, "
          f"flow {args.flow}, {describe_device(device)})")
    print(f"{'frames':>7} {'keyframes':>10} {'peak RSS MiB':>13} {'device peak MiB':>16} {'seconds':>8}")
    for count in counts:
        folder = work / f"mem-{count}"
        job_path = write_memory_job(folder, count, args.flow)
        t0 = time.perf_counter()
        result = subprocess.run([sys.executable, os.path.abspath(__file__), "--child-run", str(job_path),
                                 "--device", args.device] + (["--default-malloc"] if args.default_malloc else []),
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"retake run failed on {job_path}:\n{result.stderr}")
        rss, device_peak = (float(v) for v in result.stdout.strip().splitlines()[-1].split())
        print(f"{count:>7} {len(range(0, count, KEY_EVERY)):>10} {rss:>13.1f} {device_peak:>16.1f} "
              f"{time.perf_counter() - t0:>8.1f}")


def pipeline(args: argparse.Namespace, device: torch.device, work: Path) -> None:
    from engine.job import parse_job
    from engine.pipeline import RunOptions, run_job

    repeat = max(1, args.repeat)
    print(f"\n## End to end: `run_job` on a PIZ EXR plate, frames/s (10 Sintel frames keyed at both ends; "
          f"flow {args.flow}; {describe_device(device)}{f'; the best of {repeat}' if repeat > 1 else ''})")
    configs = {"on the render thread": {"write_threads": 0, "read_ahead": False},
               "read ahead, write behind": {}}
    sizes = [(960, 540)] if args.quick else [(960, 540), (1920, 1080)]
    print(f"{'size':>10} {'host I/O':>26} {'cold':>7} {'warm':>7}")
    for w, h in sizes:
        folder = work / f"pipeline-{w}"
        frames = speed_scenes(w, h, 2)[1].frames
        (folder / "plate").mkdir(parents=True)
        for t, frame in enumerate(frames):
            write_exr(str(folder / "plate" / f"plate.{1001 + t:04d}.exr"),
                      COLOUR.convert(np.ascontiguousarray(frame), "ACEScg", "ACES2065-1"),
                      chromaticities=AP0, aces_container=False, compression="piz")
        keys = []
        for t in (0, len(frames) - 1):
            key = folder / f"key.{1001 + t:04d}.exr"
            write_exr(str(key), edit(frames[t]), chromaticities=AP1, aces_container=False)
            keys.append({"frame": 1001 + t, "image": str(key), "colorspace": "ACEScg"})
        rates = {(label, run): 0.0 for label in configs for run in ("cold", "warm")}
        for r in range(repeat):   # interleaved: both see the same spells of the machine
            for i, (label, options) in enumerate(configs.items()):
                os.environ["RETAKE_CACHE"] = str(folder / f"cache-{i}-{r}")
                for run in ("cold", "warm"):
                    job = parse_job({"version": 1,
                                     "plate": {"path": str(folder / "plate" / "plate.####.exr"),
                                               "colorspace": "ACES2065-1"},
                                     "keyframes": keys, "transform": {"name": "propagate", "flow": args.flow},
                                     "output": {"path": str(folder / f"out-{i}-{r}-{run}" / "o.####.exr"),
                                                "compression": "piz"}})
                    _sync(device)
                    t0 = time.perf_counter()
                    result = run_job(job, RunOptions(device=device.type, **options))
                    _sync(device)
                    rates[(label, run)] = max(rates[(label, run)],
                                              len(result.rendered) / (time.perf_counter() - t0))
        for label in configs:
            print(f"{w:>5}x{h:<4} {label:>26} {rates[(label, 'cold')]:>7.2f} {rates[(label, 'warm')]:>7.2f}")
    os.environ.pop("RETAKE_CACHE", None)


def write_memory_job(folder: Path, count: int, flow: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    w, h = 320, 180
    # A slow, long camera move: the same scene as "moving", stretched over `count` frames.
    seq = moving_scene(count, w, h)
    keyframes = []
    for t, frame in enumerate(seq.frames):
        write_exr(str(folder / f"plate.{1001 + t:04d}.exr"), frame, chromaticities=AP1, aces_container=False)
        if t % KEY_EVERY == 0 and len(keyframes) < 64:
            key = folder / f"key.{1001 + t:04d}.exr"
            write_exr(str(key), edit(frame), chromaticities=AP1, aces_container=False)
            keyframes.append({"frame": 1001 + t, "image": str(key), "colorspace": "ACEScg"})
    job = {"version": 1, "plate": {"path": str(folder / "plate.####.exr"), "colorspace": "ACEScg"},
           "transform": {"name": "propagate", "flow": flow}, "keyframes": keyframes,
           "output": {"path": str(folder / "out" / "out.####.exr")}}
    path = folder / "job.json"
    path.write_text(json.dumps(job, indent=2))
    return path


def child_run(job_path: str, device: str) -> None:
    from engine.job import load_job
    from engine.pipeline import RunOptions, run_job

    os.environ.setdefault("RETAKE_CACHE", str(Path(job_path).parent / "cache"))
    run_job(load_job(job_path), RunOptions(device=device))
    # The device's own peak where it keeps one (cuda); nan elsewhere (the CPU's is the RSS).
    device_peak = torch.cuda.max_memory_allocated() / 2 ** 20 if torch.cuda.is_initialized() else float("nan")
    print(peak_rss_mib(), device_peak)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller scenes, 960x540 speed only, 24 vs 240 frames")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    ap.add_argument("--flow", default="torch", choices=("auto", "torch", "dis"))
    ap.add_argument("--only", default="quality,controls,speed,memory")
    ap.add_argument("--speed-frames", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=1,
                    help="speed: time each figure this many times and print the best (a shared machine's "
                         "neighbours slow single runs by up to a quarter)")
    ap.add_argument("--default-malloc", action="store_true",
                    help="leave glibc's malloc as it is (retake run tells it to keep freed memory: engine.heap)")
    ap.add_argument("--child-run", help=argparse.SUPPRESS)
    args = ap.parse_args()
    # As ``retake run`` does (engine.cli), so the figures are the command's.
    kept = False if args.default_malloc else keep_freed_memory()
    if args.child_run:
        child_run(args.child_run, args.device)
        return
    torch.manual_seed(0)
    device = choose_device(args.device)
    args.flow = resolve_flow_method(args.flow, device)
    print(f"# bench/propagation.py on {describe_device(device)}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads, flow {args.flow}{', quick' if args.quick else ''}, "
          f"malloc {'keeps freed memory' if kept else 'as the C library has it'}")
    sections = {"quality": quality, "controls": controls, "speed": speed, "memory": memory, "pipeline": pipeline}
    with tempfile.TemporaryDirectory(prefix="retake-bench-") as tmp:
        for name in args.only.split(","):
            sections[name.strip()](args, device, Path(tmp))


if __name__ == "__main__":
    main()
