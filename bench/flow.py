"""Optical flow benchmark: torch flow vs OpenCV DIS medium (prints a table; not a test).

    .venv/bin/python bench/flow.py [--size 960x540] [--device auto|cpu|cuda|mps] [--repeats N]
                                   [--sintel-pairs N] [--quick]

Speed: frames/s of a full flow pair (forward + backward + occlusion masks) at --size,
torch (on --device) vs DIS medium (CPU).
Accuracy at --size: EPE on known synthetic motion built from a real Sintel frame as the
texture (pan, camera roll + push-in, and a crossing occluder pasted from another frame),
and the photometric error (mean |warp(B, flow) - A| in ACEScct luminance, pixels neither
method marks occluded) on real consecutive Sintel pairs.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2  # noqa: E402
import torch  # noqa: E402

from engine.device import choose_device, describe_device  # noqa: E402
from engine.flow import endpoint_error, flow_pair, perceptual, warp  # noqa: E402

SINTEL = Path(__file__).resolve().parents[2] / "shared" / "data" / "sintel"


def load(i: int, W: int, H: int) -> torch.Tensor:
    """Sintel frame i, resized to W x H, sRGB -> linear, (1, 3, H, W) float32."""
    img = cv2.imread(str(SINTEL / f"frame_{i:04d}.png"), cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"cannot read Sintel frame {i} in {SINTEL}")
    img = cv2.resize(img[:, :, ::-1].astype(np.float32) / 255.0, (W, H), interpolation=cv2.INTER_AREA)
    lin = np.where(img <= 0.04045, img / 12.92, ((img + 0.055) / 1.055) ** 2.4)
    return torch.from_numpy(np.ascontiguousarray(lin, dtype=np.float32)).permute(2, 0, 1)[None]


def synthetic(tex: torch.Tensor, occ_tex: torch.Tensor, M, d, occluder: bool):
    """a = tex; b = tex moved by q = M (p - c) + c + d; optionally a square from occ_tex
    crossing the frame (moving 12 px right over a different motion). Returns a, b, truth, mask
    of pixels of A with a known, visible correspondence."""
    _, _, H, W = tex.shape
    ys, xs = torch.meshgrid(torch.arange(float(H)), torch.arange(float(W)), indexing="ij")
    P = torch.stack([xs, ys])
    c = torch.tensor([(W - 1) / 2, (H - 1) / 2]).view(2, 1, 1)
    Mt = torch.tensor(M, dtype=torch.float32)
    dd = torch.tensor(d, dtype=torch.float32).view(2, 1, 1)
    src = torch.einsum("ij,jhw->ihw", torch.linalg.inv(Mt), P - c - dd) + c
    a = tex.clone()
    b = warp(tex, (src - P)[None])
    truth = (torch.einsum("ij,jhw->ihw", Mt, P - c) + c + dd - P)[None]
    valid = (src[0] >= 0) & (src[0] <= W - 1) & (src[1] >= 0) & (src[1] <= H - 1)
    m = max(8, W // 40)
    valid[:m], valid[-m:], valid[:, :m], valid[:, -m:] = False, False, False, False
    if occluder:
        s, y0, x0, dx = H // 3, H // 3, W // 3, 12
        patch = occ_tex[..., y0:y0 + s, x0:x0 + s]
        a[..., y0:y0 + s, x0:x0 + s] = patch
        b[..., y0:y0 + s, x0 + dx:x0 + dx + s] = patch
        truth[:, 0, y0:y0 + s, x0:x0 + s] = dx
        truth[:, 1, y0:y0 + s, x0:x0 + s] = 0
        # Background of A hidden in B by the occluder, and the occluder's edge, have no truth.
        covered = torch.zeros(H, W, dtype=torch.bool)
        q = P + truth[0]
        covered = (q[0] >= x0 + dx - 1) & (q[0] < x0 + dx + s + 1) & (q[1] >= y0 - 1) & (q[1] < y0 + s + 1)
        inside = torch.zeros(H, W, dtype=torch.bool)
        inside[y0:y0 + s, x0:x0 + s] = True
        valid &= inside | ~covered
    return a, b, truth, valid[None, None]


def timed(fn, repeats: int, device: torch.device) -> tuple[float, object]:
    out = fn()  # warm-up (kernels, caches)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / repeats, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="960x540")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--sintel-pairs", type=int, default=9)
    ap.add_argument("--quick", action="store_true", help="1 repeat, 3 Sintel pairs")
    args = ap.parse_args()
    W, H = (int(v) for v in args.size.lower().split("x"))
    if args.quick:
        args.repeats, args.sintel_pairs = 1, 3
    device = choose_device(args.device)
    torch.set_grad_enabled(False)
    print(f"flow benchmark  {W}x{H}  torch on {describe_device(device)} "
          f"({torch.get_num_threads()} threads)  vs OpenCV DIS medium on CPU ({cv2.getNumThreads()} threads)")

    tex, other = load(16, W, H), load(22, W, H)
    rows = []
    # Speed on a real pair.
    a, b = load(20, W, H), load(21, W, H)
    ad, bd = a.to(device), b.to(device)
    t_torch, _ = timed(lambda: flow_pair(ad, bd, "torch"), args.repeats, device)
    t_dis, _ = timed(lambda: flow_pair(a, b, "dis"), args.repeats, torch.device("cpu"))
    rows.append(("speed: flow pair (fwd+bwd+occlusion), frames/s", 1 / t_torch, 1 / t_dis, "higher"))

    th, s = math.radians(2.0), 1.03
    cases = [
        ("EPE px: pan (5.3, -2.4)", [[1, 0], [0, 1]], (5.3, -2.4), False),
        ("EPE px: roll 2 deg + push-in 3%", [[s * math.cos(th), -s * math.sin(th)],
                                             [s * math.sin(th), s * math.cos(th)]], (0.0, 0.0), False),
        ("EPE px: pan + crossing occluder", [[1, 0], [0, 1]], (3.2, 1.1), True),
    ]
    for name, M, d, occ in cases:
        sa, sb, truth, valid = synthetic(tex, other, M, d, occ)
        ft = flow_pair(sa.to(device), sb.to(device), "torch").forward.cpu()
        fd = flow_pair(sa, sb, "dis").forward
        rows.append((name, endpoint_error(ft, truth, valid), endpoint_error(fd, truth, valid), "lower"))

    errs_t, errs_d = [], []
    for i in range(16, 16 + min(args.sintel_pairs, 9)):
        a, b = load(i, W, H), load(i + 1, W, H)
        pt = flow_pair(a.to(device), b.to(device), "torch").to("cpu")
        pd = flow_pair(a, b, "dis")
        keep = ~(pt.occlusion_forward | pd.occlusion_forward)
        pa, pb = perceptual(a), perceptual(b)
        errs_t.append(float((warp(pb, pt.forward) - pa).abs()[keep].mean()))
        errs_d.append(float((warp(pb, pd.forward) - pa).abs()[keep].mean()))
    rows.append((f"Sintel photometric err ({len(errs_t)} pairs, ACEScct)", float(np.mean(errs_t)),
                 float(np.mean(errs_d)), "lower"))

    print(f"{'measure':52s} {'torch':>10s} {'DIS med':>10s}  better")
    for name, t, dd, better in rows:
        print(f"{name:52s} {t:10.4f} {dd:10.4f}  {better}")


if __name__ == "__main__":
    main()
