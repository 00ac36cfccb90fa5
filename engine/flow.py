"""Optical flow without pretrained weights: torch (any device) and OpenCV DIS (CPU reference).

Conventions used throughout this module:

* images are (B, C, H, W) float32 tensors; colour plates are scene-linear ACEScg,
  unclamped (HDR values of 1000s are legal);
* flow is (B, 2, H, W) float32 in pixels, channel 0 = x (columns), channel 1 = y (rows);
  ``flow_ab`` maps a pixel p of frame A to p + flow_ab(p) in frame B, so that
  ``warp(b, flow_ab)`` looks like ``a`` wherever the pixel is visible in both frames;
* masks are (B, 1, H, W) bool.

The torch estimator is a classic coarse-to-fine variational method ("Classic+NL"-like,
Brox et al. 2004 / Sun et al. 2010, without any learned part): per pyramid level one or a
few warps; per warp the brightness- and gradient-constancy equations are linearised about
the current flow and solved by red-black SOR sweeps of a pointwise 2x2 system (4-neighbour
smoothness stencil) with a Charbonnier (robust) data term re-weighted every few sweeps
(lagged nonlinearity); an exact 3x3 median filter (min/max network) of the flow after
each warp removes outliers. On the coarse levels (at most ``fusion_width`` px wide) each
pixel first picks, among the upsampled flow and the flows 4, 8 and 16 px away on that
level, the one whose warp matches best over a 5x5 window (``_fuse``): coarse to fine alone,
a small fast object (a ball crossing at 40 px a frame) spreads its motion over the
ground around it on the coarse levels, and the finer levels cannot pull the ground back
from 20 px off. Coarse levels are cheap and get more warps than the finest one, which
is linearised once (see TORCH_FLOW_DEFAULTS); ``finest_level=1`` stops at half resolution
and upsamples the flow (about 3x faster, about twice the end-point error).
flow_pair solves forward and backward flow as one batch of 2. Everything is elementwise,
slices, small stencils and ``grid_sample``, so it runs the same on cpu, cuda and mps and
is deterministic (no atomics, no random numbers).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from engine.cuda_graphs import GraphedFunction, cuda_graphs_enabled
from engine.encoding import acescct_encode
from engine.filters import gaussian_blur

__all__ = [
    "resolve_flow_method",
    "FlowPair",
    "perceptual",
    "estimate_flow",
    "warp",
    "forward_backward",
    "motion_boundaries",
    "opencv_dis_flow",
    "flow_pair",
    "endpoint_error",
    "median_filter",
    "TORCH_FLOW_DEFAULTS",
]

# AP1 (ACEScg) luminance weights: the Y row of the AP1 -> XYZ matrix.
_AP1_LUMA = (0.2722287168, 0.6740817658, 0.0536895174)

# Parameters of the torch estimator; also part of the cache key (engine.flow_cache).
TORCH_FLOW_DEFAULTS: dict[str, float | int | None] = {
    "levels": None,        # None: as many as keep the coarsest side >= 16 px
    # The finest level is linearised once and swept 20 times, the Charbonnier weights
    # refreshed every 8 sweeps: on bench/flow.py at 960x540 that is the end-point error of
    # two warps of 8 sweeps refreshed every 4 (0.108/0.089/0.124 px against 0.114/0.089/
    # 0.123), in 0.8x the time; a warp's set-up (warp, derivatives, products, median) and a
    # refresh each cost more there than a sweep does.
    "warps": 1,            # re-linearisations on the finest solved level
    "iterations": 20,      # red-black SOR sweeps per warp on the finest solved level
    "coarse_warps": 3,     # re-linearisations per coarser level (cheap: 1/4 the pixels each)
    # SOR sweeps per warp on the coarser levels. 12 instead of 20: the flow 1.15x faster at
    # 960x540, end-point error up 1 % (bench/flow.py), propagation unchanged (+-0.01 dB).
    "coarse_iterations": 12,
    "smoothness": 0.004,   # weight of the smoothness term (intensities normalised to ~[0, 1])
    "gradient_weight": 1.0,  # weight of gradient constancy relative to brightness constancy
    "median": 3,           # median filter size applied to the flow after each warp (0: none)
    "charbonnier": 0.01,  # robust data-term scale (normalised intensity units)
    "finest_level": 0,     # finest pyramid level solved (1: half resolution, flow upsampled x2)
    "reweight": 8,         # SOR sweeps between refreshes of the robust (Charbonnier) weights
    "omega": 1.6,          # over-relaxation factor of the SOR sweeps
    "fusion_width": 160,   # levels at most this wide pick each pixel's start among its neighbours' flows
}


# --------------------------------------------------------------------------- encoding

def perceptual(image: torch.Tensor) -> torch.Tensor:
    """Perceptual luminance used as the input of flow estimation.

    image: (B, 3, H, W) float32, scene-linear ACEScg, unclamped (HDR allowed, negatives too).
    Returns (B, 1, H, W) float32: the ACEScct curve applied per channel, then the AP1
    luminance weights. ACEScct is log2 above 2^-7 and linear below, so a highlight at 1000
    is ~1.12 while mid grey (0.18) is ~0.41: highlights cannot dominate the data term,
    and shadows keep a usable slope instead of log's blow-up. This is an estimation input
    only, never an output colour conversion.
    """
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"perceptual expects (B, 3, H, W), got {tuple(image.shape)}")
    x = image.float()
    # NaN/inf would poison the whole solve through the smoothness term: neutralise them.
    x = torch.nan_to_num(x, nan=0.0, posinf=65504.0, neginf=0.0).clamp(-1.0, 65504.0)
    cct = acescct_encode(x)
    w = torch.tensor(_AP1_LUMA, dtype=cct.dtype, device=cct.device).view(1, 3, 1, 1)
    return (cct * w).sum(dim=1, keepdim=True)


def _quantiles(sample: torch.Tensor, qs: tuple[float, ...]) -> torch.Tensor:
    """``torch.quantile(sample, qs, dim=1)`` (linear interpolation), bit for bit: (len(qs), B).

    sample: (B, n) float32 without NaN. Two order statistics per quantile by ``kthvalue``
    (selection) instead of sorting the whole sample: 6x faster for 200,000 values on a CPU.
    """
    if sample.device.type == "mps":   # no kthvalue there
        return torch.quantile(sample, torch.tensor(qs, dtype=sample.dtype, device=sample.device), dim=1)
    n = sample.shape[1]
    ranks = torch.tensor(qs, dtype=sample.dtype) * (n - 1)      # as torch.quantile takes them
    below, above, weights = ranks.to(torch.long), ranks.ceil().to(torch.long), ranks - ranks.to(torch.long)
    out = []
    for k0, k1, weight in zip(below.tolist(), above.tolist(), weights.tolist()):
        low = torch.kthvalue(sample, k0 + 1, dim=1).values
        high = low if k1 == k0 else torch.kthvalue(sample, k1 + 1, dim=1).values
        out.append(low.lerp(high, torch.tensor(weight, dtype=sample.dtype, device=sample.device)))
    return torch.stack(out)


def _joint_range(pa: torch.Tensor, pb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Robust joint intensity range of two (B, 1, H, W) encodings: per batch item (B, 1, 1, 1) lo, hi.

    Percentiles (0.5 / 99.5) rather than min/max so that one HDR specular spot does not
    squash the rest of the picture into a few levels. Computed on a strided subsample to
    keep the selection's input small; deterministic.
    """
    B = pa.shape[0]
    both = torch.cat([pa.reshape(B, -1), pb.reshape(B, -1)], dim=1)
    step = max(1, both.shape[1] // 200_000)
    sample = both[:, ::step].contiguous()
    lo, hi = _quantiles(sample, (0.005, 0.995))
    hi = torch.maximum(hi, lo + 1e-3)  # flat frames: avoid a division by zero
    return lo.view(B, 1, 1, 1), hi.view(B, 1, 1, 1)


def _normalised_pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3, H, W) linear frames -> two (B, 1, H, W) float32 encodings, jointly scaled to ~[0, 1].

    The same affine map for both frames keeps brightness constancy intact; scaling to a
    known range makes the smoothness weight independent of the plate's exposure.
    """
    pa, pb = perceptual(a), perceptual(b)
    lo, hi = _joint_range(pa, pb)
    return (pa - lo) / (hi - lo), (pb - lo) / (hi - lo)


# --------------------------------------------------------------------------- warping

def _base_grid(B: int, H: int, W: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(B, 2, H, W) pixel coordinates (x, y) of every pixel centre."""
    ys = torch.arange(H, device=device, dtype=dtype)
    xs = torch.arange(W, device=device, dtype=dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=0).unsqueeze(0).expand(B, 2, H, W)


def _sample(image: torch.Tensor, flow: torch.Tensor, padding_mode: str = "border",
            mode: str = "bilinear") -> torch.Tensor:
    """image (B, C, H, W) sampled at p + flow(p), flow (B, 2, H, W): (B, C, H, W)."""
    coords = _base_grid(image.shape[0], flow.shape[-2], flow.shape[-1], flow.device, flow.dtype) + flow
    return _sample_at(image, coords, padding_mode, mode)


def _sample_at(image: torch.Tensor, coords: torch.Tensor, padding_mode: str = "border",
               mode: str = "bilinear") -> torch.Tensor:
    """image (B, C, H, W) sampled at pixel coordinates coords (B, 2, h, w) (x, y): (B, C, h, w)."""
    H, W = image.shape[-2:]
    # align_corners=True: pixel centre i sits exactly at normalised -1 + 2 i / (size - 1).
    gx = 2.0 * coords[:, 0] / max(W - 1, 1) - 1.0
    gy = 2.0 * coords[:, 1] / max(H - 1, 1) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(image, grid.to(image.dtype), mode=mode,
                         padding_mode=padding_mode, align_corners=True)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp: out(p) = image(p + flow(p)), bilinear, border padding.

    image: (B, C, H, W) float; flow: (B, 2, H, W) float32 pixels (x, y).
    Returns (B, C, H, W) in image's dtype. With flow = flow_ab and image = frame B,
    the result reproduces frame A where A's pixel is visible in B.
    """
    if flow.shape[0] != image.shape[0] or flow.shape[-2:] != image.shape[-2:] or flow.shape[1] != 2:
        raise ValueError(f"warp: image {tuple(image.shape)} and flow {tuple(flow.shape)} do not match")
    return _sample(image, flow, "border")


def local_range(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(min, max) over each pixel's 3x3 neighbourhood (edges replicated), same shape as ``image``.

    Separable and by slicing: on a CPU this is several times faster than ``max_pool2d``.
    """
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    rows_hi = torch.maximum(torch.maximum(padded[..., :-2, :], padded[..., 1:-1, :]), padded[..., 2:, :])
    rows_lo = torch.minimum(torch.minimum(padded[..., :-2, :], padded[..., 1:-1, :]), padded[..., 2:, :])
    hi = torch.maximum(torch.maximum(rows_hi[..., :-2], rows_hi[..., 1:-1]), rows_hi[..., 2:])
    lo = torch.minimum(torch.minimum(rows_lo[..., :-2], rows_lo[..., 1:-1]), rows_lo[..., 2:])
    return lo, hi


def warp_sharp(image: torch.Tensor, flow: torch.Tensor,
               bounds: tuple[torch.Tensor, torch.Tensor] | None = None,
               points: torch.Tensor | None = None) -> torch.Tensor:
    """``warp`` with bicubic sampling, kept inside the 3x3 neighbourhood's range.

    Bilinear sampling is a low-pass filter (at half a pixel it halves the highest
    frequencies), so an edit's fine detail carried along the flow goes soft; bicubic
    keeps it (measured in ``bench/propagation.py``: about +1 dB on a carried restyle).
    Bicubic can ring past the values around it, so each sample is clamped to the
    min/max of the 3x3 pixels around the pixel nearest to where it lands (they hold
    the four pixels around the sample): no new extremes, no dark halo
    pushed below black. ``bounds``: ``local_range(image)`` when the caller keeps it (a
    keyframe warped to many frames). Same shapes as ``warp``; use it on perceptually
    encoded images. ``points``: (N,) flat indexes (y W + x) of the pixels wanted; the
    result is then (B, C, N), the same values as the whole frame's at those pixels.
    """
    if flow.shape[0] != image.shape[0] or flow.shape[-2:] != image.shape[-2:] or flow.shape[1] != 2:
        raise ValueError(f"warp_sharp: image {tuple(image.shape)} and flow {tuple(flow.shape)} do not match")
    lo, hi = bounds if bounds is not None else local_range(image)
    B, _, H, W = flow.shape
    if points is None:
        coords = _base_grid(B, H, W, flow.device, flow.dtype) + flow
    else:
        if points.numel() == 0:
            return image.new_zeros(B, image.shape[1], 0)
        base = torch.stack([points % W, points // W]).to(flow.dtype)             # (2, N) x, y
        coords = (base + flow.reshape(B, 2, -1)[:, :, points]).unsqueeze(2)    # (B, 2, 1, N)
    sharp = _sample_at(image, coords, "border", mode="bicubic")
    # One pass for both bounds, at the pixel nearest to where the bicubic sample lands: its
    # 3x3 range holds the four pixels around the sample. Nearest is 3x cheaper than bilinear
    # on a CPU, and bench/propagation.py scores the same (+0.02 dB moving, 0 Sintel).
    ranged = _sample_at(torch.cat([lo, hi], dim=1), coords, "border", mode="nearest")
    c = image.shape[1]
    out = torch.minimum(torch.maximum(sharp, ranged[:, :c]), ranged[:, c:])
    return out if points is None else out[:, :, 0]


def _inside(flow: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """(B, 1, H, W) bool: p + flow(p) lies inside the frame (within ``margin`` pixels)."""
    B, _, H, W = flow.shape
    coords = _base_grid(B, H, W, flow.device, flow.dtype) + flow
    x, y = coords[:, 0:1], coords[:, 1:2]
    return (x >= -margin) & (x <= W - 1 + margin) & (y >= -margin) & (y <= H - 1 + margin)


# --------------------------------------------------------------------------- stencils

def _conv_same(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Depthwise 2-D convolution of (N, C, H, W) with a (kh, kw) kernel, replicate padding."""
    kh, kw = kernel.shape
    C = x.shape[1]
    k = kernel.to(x.dtype).to(x.device).expand(C, 1, kh, kw)
    xp = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2), mode="replicate")
    return F.conv2d(xp, k, groups=C)


# 5-point central derivative (Sun et al.): more accurate than [-1, 0, 1]/2 for sub-pixel work.
_D5 = torch.tensor([[1.0, -8.0, 0.0, 8.0, -1.0]]) / 12.0
# Smoothing neighbourhood (Horn & Schunck): 8 neighbours, edge ones weighted double, sum 1.
_NEIGH = torch.tensor([[1.0, 2.0, 1.0], [2.0, 0.0, 2.0], [1.0, 2.0, 1.0]]) / 12.0


def _gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, H, W) -> d/dx, d/dy, each (N, C, H, W), 5-point central differences.

    Same as convolving with _D5 / _D5.t() (replicate padding), written with slices:
    depthwise conv2d is slow on some CPU backends.
    """
    p = F.pad(x, (2, 2, 0, 0), mode="replicate")
    gx = (p[..., 3:-1] - p[..., 1:-3]).mul_(8.0).add_(p[..., :-4]).sub_(p[..., 4:]).mul_(1.0 / 12.0)
    p = F.pad(x, (0, 0, 2, 2), mode="replicate")
    gy = (p[..., 3:-1, :] - p[..., 1:-3, :]).mul_(8.0).add_(p[..., :-4, :]).sub_(p[..., 4:, :]).mul_(1.0 / 12.0)
    return gx, gy


def _med3(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Elementwise median of three tensors."""
    return torch.maximum(torch.minimum(a, b), torch.minimum(torch.maximum(a, b), c))


def _median3(x: torch.Tensor) -> torch.Tensor:
    """Exact 3x3 median of (N, C, H, W), replicate padding, with min/max only (no sort).

    Sort every vertical triple (lo <= mid <= hi); the median of the 3x3 window is then
    med3(max of the three lo, med3 of the three mid, min of the three hi) over the
    horizontal neighbours (the classic separable 9-element median network).
    """
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    a, b, c = p[..., :-2, :], p[..., 1:-1, :], p[..., 2:, :]
    mn, mx = torch.minimum(a, b), torch.maximum(a, b)
    lo = torch.minimum(mn, c)
    hi = torch.maximum(mx, c)
    mid = torch.maximum(mn, torch.minimum(mx, c))
    lo_max = torch.maximum(torch.maximum(lo[..., :-2], lo[..., 1:-1]), lo[..., 2:])
    hi_min = torch.minimum(torch.minimum(hi[..., :-2], hi[..., 1:-1]), hi[..., 2:])
    mid_med = _med3(mid[..., :-2], mid[..., 1:-1], mid[..., 2:])
    return _med3(lo_max, mid_med, hi_min)


def median_filter(x: torch.Tensor, size: int) -> torch.Tensor:
    """size x size median filter of (N, C, H, W), replicate padding.

    Sun et al. (2010): a median of the flow after each warp is what makes a quadratic-ish
    variational flow robust to outliers at motion boundaries.
    """
    if size <= 1:
        return x
    if size == 3:
        return _median3(x)
    N, C, H, W = x.shape
    r = size // 2
    xp = F.pad(x, (r, r, r, r), mode="replicate")
    patches = F.unfold(xp, kernel_size=size)  # (N, C*size*size, H*W)
    patches = patches.view(N, C, size * size, H * W)
    return patches.median(dim=2).values.view(N, C, H, W)


# --------------------------------------------------------------------------- estimator

def _default_levels(H: int, W: int, coarsest: int = 16) -> int:
    return max(1, int(math.floor(math.log2(max(min(H, W), 1) / coarsest))) + 1)


def _checkerboard(h: int, w: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, 1, h, w) red and black masks (0/1) of a checkerboard."""
    ys = torch.arange(h, device=device).view(h, 1)
    xs = torch.arange(w, device=device).view(1, w)
    red = ((ys + xs) % 2 == 0).to(dtype).view(1, 1, h, w)
    return red, 1.0 - red


def _neighbour_sum(w: torch.Tensor) -> torch.Tensor:
    """Sum of the 4 neighbours of every pixel of (N, C, h, w), replicate padding (slices, no conv)."""
    p = F.pad(w, (1, 1, 1, 1), mode="replicate")
    out = p[..., :-2, 1:-1] + p[..., 2:, 1:-1]
    out += p[..., 1:-1, :-2]
    out += p[..., 1:-1, 2:]
    return out


# Levels with at least this many pixels sweep on the checkerboard's quarters
# (``_sweep_quarters``): 1.6x faster per sweep at 960x544, no faster at a quarter of that.
_QUARTER_PIXELS = 1 << 18
# The pointwise 2x2 systems of a level: the new flow at a pixel is [[p, q], [q, s]] (its
# neighbours' mean + (nb1, nb2)), that is [[p, q], [q, s]] / 4 (their sum + 4 (nb1, nb2)).
# Held as (diag, q, rhs) = ((p, s) / 4 (N, 2, h, w), q / 4 (N, 1, h, w), 4 (nb1, nb2)
# (N, 2, h, w)): a sweep updates both components of the flow in one tensor, and never
# divides the sum by 4 (scaling by a power of 2 is exact, so the result is the mean's bit
# for bit). The same arithmetic element by element as one component at a time with the
# mean, a sweep in about half the operations: a 960x540 pair takes 10,026 compute ops
# instead of 15,452 (with ``_fuse``'s constant gradients made once), the launches a GPU
# waits on, and 6 % less time on a CPU (min of 5: 0.274 -> 0.258 s).
_Coefficients = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _update(r: torch.Tensor, diag: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The symmetric 2x2 [[d0, q], [q, d1]] times r at every pixel: (d0 rx + q ry, d1 ry + q rx).

    r, diag = (d0, d1): (N, 2, h, w); q: (N, 1, h, w)."""
    return torch.addcmul(diag * r, q, r.flip(1))


def _sweep_checkerboard(w: torch.Tensor, coefficients: _Coefficients,
                        weights: tuple[torch.Tensor, torch.Tensor], sweeps: int) -> None:
    """``sweeps`` red-black SOR sweeps of the pointwise 2x2 systems on the flow w (N, 2, h, w), in place.

    coefficients: ``_Coefficients``; weights: the red and the black pixels' over-relaxation
    factor, 0 on the other colour, (1, 1, h, w) each.
    """
    diag, q, rhs = coefficients
    for _ in range(sweeps):
        for mask in weights:
            r = _neighbour_sum(w).add_(rhs)
            # Over-relaxed update of this colour only (the other is held).
            w.lerp_(_update(r, diag, q), mask)


def _quarters(x: torch.Tensor) -> list[torch.Tensor]:
    """(N, C, h, w), h and w even -> its four (N, C, h/2, w/2) sub-grids, index 2 * (y % 2) + (x % 2)."""
    return [x[..., i::2, j::2].contiguous() for i in (0, 1) for j in (0, 1)]


def _quarter_neighbour_sum(q: list[torch.Tensor], py: int, px: int) -> torch.Tensor:
    """``_neighbour_sum`` of the full grid at the pixels of quarter (py, px), bit for bit.

    Its vertical neighbours are quarter (1 - py, px) and its horizontal ones (py, 1 - px),
    one of each pair in the same place and the other one cell over; at the frame's edge the
    pixel itself stands in, as replicate padding makes it. Sums in the same order.
    """
    own, vert, horiz = q[2 * py + px], q[2 * (1 - py) + px], q[2 * py + (1 - px)]
    out = torch.empty_like(own)
    if py == 0:   # above: vert one row up (own on the top row); below: vert
        out[..., 1:, :] = vert[..., :-1, :]
        out[..., :1, :] = own[..., :1, :]
    else:         # above: vert; below: vert one row down (own on the bottom row)
        out[..., :-1, :] = vert[..., 1:, :]
        out[..., -1:, :] = own[..., -1:, :]
    out += vert
    if px == 0:   # left: horiz one column left (own in the first column); right: horiz
        out[..., :, 1:] += horiz[..., :, :-1]
        out[..., :, :1] += own[..., :, :1]
        out += horiz
    else:         # left: horiz; right: horiz one column right (own in the last column)
        out += horiz
        out[..., :, :-1] += horiz[..., :, 1:]
        out[..., :, -1:] += own[..., :, -1:]
    return out


def _sweep_quarters(w: torch.Tensor, coefficients: _Coefficients, omega: float, sweeps: int) -> None:
    """``_sweep_checkerboard`` with the same result, bit for bit, on levels of even size.

    The red pixels (x + y even) are quarters (0, 0) and (1, 1) of the grid, the black ones
    (0, 1) and (1, 0), and every neighbour of a red pixel is black: so each half-sweep
    updates its two quarters only, instead of computing the whole grid and keeping half.
    """
    W = _quarters(w)
    D, Q, R = (_quarters(c) for c in coefficients)
    for _ in range(sweeps):
        for colour in ((0, 3), (1, 2)):      # red, then black
            for k in colour:
                py, px = divmod(k, 2)
                r = _quarter_neighbour_sum(W, py, px).add_(R[k])
                W[k].lerp_(_update(r, D[k], Q[k]), omega)
    for k, (i, j) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        w[..., i::2, j::2] = W[k]


_FUSION_STEPS = (4, 8, 16)   # px on the level: how far away a neighbour's flow is tried


def _shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """x (B, C, h, w) moved by (dy, dx) px, the edge repeated into what it leaves."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)), mode="replicate")
    y0, x0 = max(-dy, 0), max(-dx, 0)
    return padded[..., y0:y0 + h, x0:x0 + w]


def _fuse(a: torch.Tensor, b: torch.Tensor, flow: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """flow (B, 2, h, w) with each pixel's vector replaced by the best of its neighbours'.

    a, b: (B, 1, h, w) normalised intensities of one level. Candidates: the flow itself and
    the flow ``_FUSION_STEPS`` px left, right, up and down (the edge's own flow repeated
    beyond it). The cost of a candidate is the brightness and
    gradient difference of a and b warped by it, averaged over a (2 radius + 1)^2 window,
    with a penalty for landing outside b. Deterministic: no random candidates.
    """
    gax, gay = _gradients(a)

    def cost(candidate: torch.Tensor) -> torch.Tensor:
        warped = warp(b, candidate)
        gbx, gby = _gradients(warped)
        c = (a - warped).abs() + (gax - gbx).abs() + (gay - gby).abs()
        c = c + 10.0 * (~_inside(candidate)).to(c.dtype)
        padded = F.pad(c, (radius,) * 4, mode="replicate")
        return F.avg_pool2d(padded, 2 * radius + 1, 1)

    best, best_cost = flow, cost(flow)
    for step in _FUSION_STEPS:
        for dy, dx in ((0, step), (0, -step), (step, 0), (-step, 0)):
            candidate = _shifted(flow, dy, dx)
            c = cost(candidate)
            better = c < best_cost
            best = torch.where(better, candidate, best)
            best_cost = torch.where(better, c, best_cost)
    return best


def _solve_level(a: torch.Tensor, b: torch.Tensor, flow: torch.Tensor, *, warps: int, iterations: int,
                 smoothness: float, gradient_weight: float, median: int, charbonnier: float,
                 reweight: int = 8, omega: float = 1.6) -> torch.Tensor:
    """Refine flow (B, 2, h, w) from a to b (both (B, 1, h, w), normalised) at one pyramid level.

    Per warp the constancy equations are linearised about the current flow and the
    resulting (Charbonnier-weighted) linear system is solved by ``iterations`` red-black
    SOR sweeps of the pointwise 2x2 system with a 4-neighbour smoothness stencil; the
    robust weights are refreshed every ``reweight`` sweeps (lagged nonlinearity).
    """
    eps = charbonnier  # residuals well below it are quadratic, above it ~L1
    # Channels of the constancy assumptions: intensity, and its gradient (robust to the
    # smooth illumination changes that brightness constancy alone would read as motion).
    def channels(img: torch.Tensor) -> torch.Tensor:
        gx, gy = _gradients(img)
        return torch.cat([img, gradient_weight * gx, gradient_weight * gy], dim=1)

    ca = channels(a)
    cb = channels(b)
    ga_x, ga_y = _gradients(ca)
    lam = smoothness
    h, w_ = a.shape[-2:]
    red, black = _checkerboard(h, w_, a.device, a.dtype)
    red_w, black_w = red * omega, black * omega  # lerp weights: omega on this colour, 0 elsewhere
    quartered = h % 2 == 0 and w_ % 2 == 0 and h * w_ >= _QUARTER_PIXELS
    for _ in range(warps):
        u0 = flow
        cbw = _sample(cb, u0)
        gb_x, gb_y = _gradients(cbw)
        # Average the two frames' derivatives: a symmetric, better-conditioned linearisation.
        Ix = 0.5 * (ga_x + gb_x)
        Iy = 0.5 * (ga_y + gb_y)
        It = cbw - ca
        # Where p + flow leaves the frame, the warped value is padding: no data there.
        valid = _inside(u0).to(a.dtype)
        # Residual at flow w: It + Ix (w_x - u0_x) + Iy (w_y - u0_y) = c0 + Ix w_x + Iy w_y
        c0 = It - Ix * u0[:, 0:1] - Iy * u0[:, 1:2]
        Ixx, Ixy, Iyy = Ix * Ix, Ix * Iy, Iy * Iy
        Ixc, Iyc = Ix * c0, Iy * c0
        w = flow.clone()
        wx, wy = w[:, 0:1], w[:, 1:2]          # views: the sweeps update w in place
        done = 0
        while done < iterations:
            r = torch.addcmul(torch.addcmul(c0, Ix, wx), Iy, wy)
            # Normalised Charbonnier weight in (0, 1]: quadratic for small residuals,
            # L1-like for outliers (occlusions, specular changes).
            phi = torch.rsqrt(r.mul_(r).add_(eps * eps)).mul_(eps).mul_(valid)
            J11 = (phi * Ixx).sum(1, keepdim=True)
            J12 = (phi * Ixy).sum(1, keepdim=True)
            J22 = (phi * Iyy).sum(1, keepdim=True)
            b1 = (phi * Ixc).sum(1, keepdim=True)
            b2 = (phi * Iyc).sum(1, keepdim=True)
            A11 = J11.add_(lam)
            A22 = J22.add_(lam)
            inv = (A11 * A22).sub_(J12 * J12).reciprocal_().mul_(lam)
            # lam (J + lam I)^-1 = [[p, q], [q, s]];  w = [[p, q], [q, s]] (wbar - b / lam).
            coefficients = (torch.cat([A22 * inv, A11 * inv], dim=1).mul_(0.25), J12.neg_().mul_(inv).mul_(0.25),
                            torch.cat([b1, b2], dim=1).mul_(-1.0 / lam).mul_(4.0))
            sweeps = min(reweight, iterations - done)
            if quartered:
                _sweep_quarters(w, coefficients, omega, sweeps)
            else:
                _sweep_checkerboard(w, coefficients, (red_w, black_w), sweeps)
            done += sweeps
        flow = median_filter(w, median)
    return flow


def _estimate_normalised(ia: torch.Tensor, ib: torch.Tensor, *, levels: int | None, warps: int,
                         iterations: int, smoothness: float, gradient_weight: float, median: int,
                         charbonnier: float, finest_level: int = 0, coarse_iterations: int | None = None,
                         coarse_warps: int | None = None, reweight: int = 8, omega: float = 1.6,
                         fusion_width: int = 0) -> torch.Tensor:
    """estimate_flow on (B, 1, H, W) intensities already normalised to ~[0, 1]."""
    B, _, H, W = ia.shape
    L = levels if levels is not None else _default_levels(H, W)
    L = max(1, int(L))
    finest = min(max(0, int(finest_level)), L - 1)
    # A light pre-blur makes the derivatives of noisy or aliased plates meaningful.
    ia, ib = gaussian_blur(ia, 0.7, truncate=2.5), gaussian_blur(ib, 0.7, truncate=2.5)
    # Pad to a multiple of 2^(L-1) so every level is exactly half the next: the flow then
    # upsamples by an exact factor 2 with no sub-pixel drift between levels.
    m = 2 ** (L - 1)
    Hp, Wp = -(-H // m) * m, -(-W // m) * m
    if (Hp, Wp) != (H, W):
        pad = (0, Wp - W, 0, Hp - H)
        ia, ib = F.pad(ia, pad, mode="replicate"), F.pad(ib, pad, mode="replicate")
    pyr = [(ia, ib)]
    for _ in range(L - 1):
        pa, pb = pyr[-1]
        pyr.append((F.avg_pool2d(pa, 2), F.avg_pool2d(pb, 2)))
    ch, cw = pyr[-1][0].shape[-2:]
    flow = torch.zeros(B, 2, ch, cw, device=ia.device, dtype=torch.float32)
    for lvl in range(L - 1, finest - 1, -1):
        pa, pb = pyr[lvl]
        if flow.shape[-2:] != pa.shape[-2:]:
            flow = 2.0 * F.interpolate(flow, size=pa.shape[-2:], mode="bilinear", align_corners=False)
            if pa.shape[-1] <= fusion_width:
                flow = _fuse(pa, pb, flow)
        it = iterations if (lvl == finest or coarse_iterations is None) else coarse_iterations
        wp = warps if (lvl == finest or coarse_warps is None) else coarse_warps
        flow = _solve_level(pa, pb, flow, warps=wp, iterations=it, smoothness=smoothness,
                            gradient_weight=gradient_weight, median=median, charbonnier=charbonnier,
                            reweight=reweight, omega=omega)
    if finest > 0:
        # Levels below ``finest`` are not refined: the flow is upsampled to full size.
        flow = float(2 ** finest) * F.interpolate(flow, size=(Hp, Wp), mode="bilinear", align_corners=False)
    return flow[:, :, :H, :W].contiguous()


def _estimate_defaults() -> dict:
    import inspect
    sig = inspect.signature(estimate_flow)
    return {k: p.default for k, p in sig.parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and k != "encoded"}


def estimate_flow(a: torch.Tensor, b: torch.Tensor, *, levels: int | None = None,
                  warps: int = 1, iterations: int = 20, smoothness: float = 0.004,
                  gradient_weight: float = 1.0, median: int = 3, charbonnier: float = 0.01,
                  encoded: bool = False, finest_level: int = 0, coarse_iterations: int | None = 12,
                  coarse_warps: int | None = 3, reweight: int = 8, omega: float = 1.6,
                  fusion_width: int = 160) -> torch.Tensor:
    """Dense optical flow from frame a to frame b, coarse to fine, weights-free.

    a, b: (B, 3, H, W) float32 scene-linear ACEScg (HDR allowed), or, with ``encoded=True``,
    (B, 1, H, W) intensities already in a perceptual encoding (used as they are).
    levels: pyramid levels (None: coarsest side ~16-32 px); warps: re-linearisations per
    level; iterations: red-black SOR sweeps per warp on the finest solved level;
    coarse_iterations: sweeps per warp on the coarser levels (None: ``iterations``);
    smoothness: weight of the smoothness term (higher = smoother flow); gradient_weight:
    gradient vs brightness constancy; median: median filter size on the flow after each
    warp; finest_level: the finest pyramid level that is solved (0: full resolution,
    1: half resolution, the flow then upsampled x2, ...); reweight: sweeps between
    refreshes of the robust weights; omega: over-relaxation factor (1: Gauss-Seidel);
    fusion_width: levels at most this wide start from the best of each pixel's neighbours'
    upsampled flows (``_fuse``; 0: never).
    Returns flow (B, 2, H, W) float32, pixels, x then y, mapping frame A pixel p to
    p + flow(p) in frame B (so ``warp(b, flow) ~= a``). Same device as a.
    """
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"estimate_flow: frames must have the same (B, C, H, W) shape, got {tuple(a.shape)}, {tuple(b.shape)}")
    if encoded:
        ia, ib = a.float(), b.float()
    else:
        ia, ib = _normalised_pair(a, b)
    return _estimate_normalised(ia, ib, levels=levels, warps=warps, iterations=iterations,
                                smoothness=smoothness, gradient_weight=gradient_weight, median=median,
                                charbonnier=charbonnier, finest_level=finest_level,
                                coarse_iterations=coarse_iterations, coarse_warps=coarse_warps,
                                reweight=reweight, omega=omega, fusion_width=fusion_width)


_ESTIMATE_DEFAULTS = _estimate_defaults()
assert _ESTIMATE_DEFAULTS == TORCH_FLOW_DEFAULTS, "TORCH_FLOW_DEFAULTS must match estimate_flow's defaults"
# The solve of ``flow_pair`` replayed as a CUDA graph where that is asked for (engine.cuda_graphs).
_GRAPHED_SOLVE = GraphedFunction(_estimate_normalised)


# --------------------------------------------------------------------------- masks

def forward_backward(flow_ab: torch.Tensor, flow_ba: torch.Tensor, *, alpha: float = 0.01,
                     beta: float = 0.5) -> torch.Tensor:
    """Occlusion mask of frame A from the forward-backward consistency check (Sundaram et al. 2010).

    flow_ab, flow_ba: (B, 2, H, W) float32 pixels. A pixel p of A is occluded (not visible
    in B) when  |f_ab + f_ba(p + f_ab)|^2 > alpha (|f_ab|^2 + |f_ba(p + f_ab)|^2) + beta,
    or when p + f_ab(p) lies outside frame B.
    Returns (B, 1, H, W) bool, True = occluded / no reliable correspondence.
    """
    back = warp(flow_ba, flow_ab)
    s = flow_ab + back
    lhs = (s * s).sum(1, keepdim=True)
    rhs = alpha * ((flow_ab * flow_ab).sum(1, keepdim=True) + (back * back).sum(1, keepdim=True)) + beta
    return (lhs > rhs) | ~_inside(flow_ab)


def motion_boundaries(flow: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Motion boundaries: pixels where the flow changes fast.

    flow: (B, 2, H, W) float32 pixels. The flow gradient magnitude
    sqrt(|grad u|^2 + |grad v|^2) (central differences, pixels of flow per pixel) is
    compared with ``threshold``. Returns (B, 1, H, W) bool, True = on a motion boundary.
    """
    d = torch.tensor([[-0.5, 0.0, 0.5]])
    gx = _conv_same(flow, d)
    gy = _conv_same(flow, d.t())
    mag = torch.sqrt((gx * gx + gy * gy).sum(1, keepdim=True))
    return mag > threshold


def endpoint_error(flow: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean end-point error |flow - truth| in pixels over mask ((B, 1, H, W) bool, None = all)."""
    e = torch.linalg.vector_norm(flow - truth, dim=1, keepdim=True)
    if mask is not None:
        e = e[mask.expand_as(e)]
    return float(e.mean())


# --------------------------------------------------------------------------- OpenCV DIS

_DIS_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}


def _to_u8(x: torch.Tensor) -> np.ndarray:
    """(1, H, W) float in ~[0, 1] -> (H, W) uint8, clipped and rounded."""
    return np.ascontiguousarray((x[0].detach().cpu().numpy().clip(0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


def opencv_dis_flow(a: torch.Tensor, b: torch.Tensor, preset: str = "medium") -> torch.Tensor:
    """OpenCV DIS flow (CPU reference and fallback), same inputs and conventions as estimate_flow.

    a, b: (B, 3, H, W) float32 scene-linear ACEScg. Each pair is encoded with perceptual(),
    jointly normalised by its robust range and quantised to uint8 (DIS takes 8-bit input).
    Returns flow (B, 2, H, W) float32 pixels (x, y) from a to b, on a's device.
    """
    import cv2  # local: only this fallback needs OpenCV

    if preset not in _DIS_PRESETS:
        raise ValueError(f"unknown DIS preset {preset!r}; use one of {sorted(_DIS_PRESETS)}")
    ia, ib = _normalised_pair(a, b)
    out = []
    for i in range(ia.shape[0]):
        # A fresh instance per pair: DIS keeps state between calls only if asked to.
        dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])
        f = dis.calc(_to_u8(ia[i]), _to_u8(ib[i]), None)  # (H, W, 2) float32, x then y
        out.append(torch.from_numpy(f).permute(2, 0, 1))
    return torch.stack(out).to(device=a.device, dtype=torch.float32)


# --------------------------------------------------------------------------- pairs

@dataclass
class FlowPair:
    """Both flows between two frames and their occlusion masks.

    forward: (B, 2, H, W) float32, A -> B; backward: (B, 2, H, W) float32, B -> A;
    occlusion_forward: (B, 1, H, W) bool, pixels of A not visible in B;
    occlusion_backward: (B, 1, H, W) bool, pixels of B not visible in A (disocclusions).
    """

    forward: torch.Tensor
    backward: torch.Tensor
    occlusion_forward: torch.Tensor
    occlusion_backward: torch.Tensor

    def to(self, device: torch.device | str) -> "FlowPair":
        return FlowPair(self.forward.to(device), self.backward.to(device),
                        self.occlusion_forward.to(device), self.occlusion_backward.to(device))


def resolve_flow_method(method: str, device: torch.device | str) -> str:
    """The estimator a job's ``flow`` names on ``device``: "torch" or "dis".

    "auto" is the engine's torch estimator on a GPU and OpenCV's DIS on the CPU: on two CPU
    cores DIS makes a 960x540 pair about 2.5-3x faster than the torch estimator, for a
    propagation within 0.3 dB of it on ``bench/propagation.py``, but it follows a moving
    shadow over still ground (a brightness change read as motion), so a local paint lands
    in the shadow; the jobs' default is therefore "torch" everywhere. A farm that mixes GPU
    and CPU workers should not use "auto": every chunk must use the same flow.
    """
    if method == "auto":
        return "dis" if torch.device(device).type == "cpu" else "torch"
    if method not in ("torch", "dis"):
        raise ValueError(f"unknown flow method {method!r}; use 'auto', 'torch' or 'dis'")
    return method


def flow_pair(a: torch.Tensor, b: torch.Tensor, method: str = "torch", *, alpha: float = 0.01,
              beta: float = 0.5, **params) -> FlowPair:
    """Forward and backward flow between a and b ((B, 3, H, W) linear ACEScg) with occlusions.

    method: "torch" (estimate_flow, any device; params go to it) or "dis" (OpenCV DIS on
    CPU; params may hold ``preset``). alpha, beta: the forward-backward check.
    """
    if method == "torch":
        if a.shape != b.shape or a.dim() != 4:
            raise ValueError(f"flow_pair: frames must have the same (B, C, H, W) shape, got {tuple(a.shape)}, {tuple(b.shape)}")
        if params.get("encoded", False):
            ia, ib = a.float(), b.float()
        else:
            ia, ib = _normalised_pair(a, b)  # the joint range is symmetric in a and b
        # Forward and backward in one batch (B -> 2B): every op runs once, on bigger tensors.
        opts = {k: v for k, v in params.items() if k != "encoded"}
        kwargs = {**_ESTIMATE_DEFAULTS, **opts}
        x, y = torch.cat([ia, ib]), torch.cat([ib, ia])
        if cuda_graphs_enabled(x.device):
            both = _GRAPHED_SOLVE(x, y, static=tuple(sorted(kwargs.items())))
        else:
            both = _estimate_normalised(x, y, **kwargs)
        n = a.shape[0]
        fwd, bwd = both[:n], both[n:]
    elif method == "dis":
        fwd = opencv_dis_flow(a, b, **params)
        bwd = opencv_dis_flow(b, a, **params)
    else:
        raise ValueError(f"unknown flow method {method!r}; use 'torch' or 'dis'")
    return FlowPair(fwd, bwd,
                    forward_backward(fwd, bwd, alpha=alpha, beta=beta),
                    forward_backward(bwd, fwd, alpha=alpha, beta=beta))
