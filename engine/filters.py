"""Torch image filters shared by the flow estimator and the synthesis (any device).

Shapes: (B, C, H, W) float tensors, any colour encoding (a filter is linear in what it
is given; the caller decides whether that is scene-linear ACEScg, ACEScct code values,
a flow or a weight map). Edges are replicated.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["gaussian_kernel", "gaussian_blur"]

# Up to this radius the blur is a sum of shifted slices on every device; above it, on a
# GPU, one depthwise convolution per axis (fewer kernel launches). On a CPU the slices
# are always used: depthwise conv2d there took 9-70 ms a 960x540 plane where the slices
# take 0.5-17 ms (1-3 channels, radius 3-44), with the same result.
_SLICE_RADIUS = 16


def gaussian_kernel(sigma: float, truncate: float = 3.0) -> torch.Tensor:
    """(2r + 1,) float32 taps of a normalised Gaussian, r = max(1, ceil(truncate * sigma))."""
    radius = max(1, int(math.ceil(truncate * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _axis(x: torch.Tensor, taps: torch.Tensor, dim: int, slices: bool) -> torch.Tensor:
    """x blurred along ``dim`` (-1: columns, -2: rows) by ``taps`` (2r + 1,), edges replicated."""
    r = (taps.numel() - 1) // 2
    n = x.shape[dim]
    pad = (r, r, 0, 0) if dim == -1 else (0, 0, r, r)
    padded = F.pad(x, pad, mode="replicate")
    if slices:
        weights = taps.tolist()
        out = padded.narrow(dim, 0, n) * weights[0]
        for i in range(1, 2 * r + 1):
            out.add_(padded.narrow(dim, i, n), alpha=weights[i])
        return out
    C = x.shape[1]
    shape = (C, 1, 1, -1) if dim == -1 else (C, 1, -1, 1)
    return F.conv2d(padded, taps.to(device=x.device, dtype=x.dtype).view(shape[2:]).expand(*shape), groups=C)


def gaussian_blur(x: torch.Tensor, sigma: float, truncate: float = 3.0, *, method: str = "auto") -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W), replicate padding; sigma <= 0.05 returns x.

    The kernel reaches ``truncate`` sigmas; along an axis shorter than that it is cut to
    the image's size and renormalised. method: "auto" (slices on a CPU or up to ``_SLICE_RADIUS``,
    else a depthwise convolution), "slices" or "conv" (the same result to rounding;
    for tests and benchmarks). Returns the same shape and dtype.
    """
    if method not in ("auto", "slices", "conv"):
        raise ValueError(f"gaussian_blur: unknown method {method!r}")
    if sigma <= 0.05:
        return x
    k = gaussian_kernel(sigma, truncate)
    radius = (k.numel() - 1) // 2
    H, W = x.shape[-2:]
    out = x
    for dim, size in ((-1, W), (-2, H)):
        r = min(radius, size - 1)
        if r <= 0:
            continue
        taps = k if r == radius else k[radius - r: radius + r + 1] / k[radius - r: radius + r + 1].sum()
        slices = method == "slices" or (method == "auto" and (x.device.type == "cpu" or r <= _SLICE_RADIUS))
        out = _axis(out, taps, dim, slices)
    return out
