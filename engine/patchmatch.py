"""PatchMatch repair of a correspondence field where the flow is not to be trusted.

Propagation carries a keyframe along the chained optical flow. Where that flow is wrong
(smoothed across a moving object's edge, lost in a fast move) or where the chain is
occluded, warping alone smears; EbSynth ("Stylizing Video by Example", Jamriska et al.
2019) instead looks, for each patch of the target frame's *source*, for the best-matching
patch of the keyframe's source, and takes the keyframe's pixels from there. This module
does that search (PatchMatch, Barnes et al. 2009) on the pixels a caller selects, starting
from the flow:

* **guide**: the two source frames in a perceptual encoding (ACEScct), compared over
  3x3 patches: luma over the patch, chroma at its centre (``_planes``; mean squared
  difference of the descriptors). There is no positional
  guide beyond starting from the flow: a cost for straying from the flow's match cost
  0.3-1 dB in ``bench/propagation.py`` (the flow is wrong exactly where this runs);
* **propagation**: a pixel tries its neighbours' matches, with jumps of 8, 2 and 1 px
  (jump flooding), so the good flow around a bad region spreads into it within a few
  iterations;
* **random search** around the current match at halving radii;
* **sub-pixel refinement** of a match the search moved: a parabola through the costs a
  pixel either side, per axis (costs are taken at whole pixels).

Everything is gathers and elementwise torch on the selected pixels only, so the cost
follows the size of the region searched, not the frame, and it runs the same on cpu,
cuda and mps. Random numbers come from a generator seeded by the caller:
the same inputs and seed give the same field.

Conventions (as ``engine.flow``): guides (B, C, H, W) float32; flow (B, 2, H, W) float32
pixels (x, y), ``flow_ab`` maps a pixel p of A to p + flow_ab(p) in B; masks (B, 1, H, W).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["PatchMatchParams", "patch_rows", "patchmatch_repair"]


@dataclass(frozen=True)
class PatchMatchParams:
    """radius: patch half-size (patches are (2r+1)^2; 3x3 matched best in the benchmark);
    iterations: rounds of propagation and random search; search_radius: px of the first
    random search (halved down to 1 px); jumps: the propagation steps of each round, px;
    median, outlier: a repaired offset more than ``outlier`` px from the median of its
    ``median`` x ``median`` neighbourhood takes that median (median 1: none; only matches the
    search moved more than ``outlier`` px from the flow's are checked); converged: a
    patch cost (mean squared ACEScct difference) at which a pixel stops searching, about
    the noise of a clean plate (0.006 a channel)."""

    radius: int = 1
    iterations: int = 3
    search_radius: float = 8.0
    jumps: tuple[int, ...] = (8, 2, 1)
    median: int = 5
    outlier: float = 8.0
    converged: float = 4e-5


# The patch descriptor of a colour guide: its luma over the whole patch and its chroma at the
# centre pixel. Structure lives in luma; colour tells look-alikes apart, and one sample of it
# does that. 11 numbers a pixel instead of 27: on bench/propagation.py within 0.05 dB of the
# full colour patch, and the synthesis 1.15-1.3x faster on a CPU (the lookups are most of
# PatchMatch's cost).
# Luma weights: the Y row of AP1 (ACEScg's primaries), applied to ACEScct code values.
_LUMA = (0.2722287, 0.6740818, 0.0536895)
_CHROMA_WEIGHT = 3.0   # chroma differences are small beside luma's: weighed up to count


def _planes(guide: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(C, H, W) guide -> (the planes compared over the patch, the planes compared at its centre).

    A 3-channel guide (ACEScct RGB) is compared as luma over the patch and chroma (R - Y,
    G - Y: 0.05 dB better than R - Y, B - Y on the benchmark, blue being the noisiest) at the
    centre; any other guide channel by channel over the whole patch."""
    if guide.shape[0] != 3:
        return guide, None
    weights = torch.tensor(_LUMA, device=guide.device, dtype=guide.dtype).view(3, 1, 1)
    luma = (guide * weights).sum(dim=0, keepdim=True)
    return luma, _CHROMA_WEIGHT * (guide[0:2] - luma)


def patch_rows(guide: torch.Tensor, radius: int) -> torch.Tensor:
    """(C, H, W) guide -> ((H + 2) * (W + 2), D): every pixel's patch descriptor as one row.

    D = (2r+1)^2 + 2 for a 3-channel guide (``_planes``), C * (2r+1)^2 otherwise; patches
    replicate the frame's edge. Rows, so that looking a candidate up reads one contiguous
    run of memory. The rows lie on the frame grown by one pixel each side, and that ring's
    rows are +inf: a candidate outside the frame is clamped onto the ring and its cost
    comes out +inf, with no test of its own (``_cost``). A keyframe's rows serve every
    frame that reaches it: the caller may make them once.
    """
    patch, centre = _planes(guide)
    H, W = patch.shape[-2:]
    padded = F.pad(patch[None], (radius,) * 4, mode="replicate")
    rows = F.unfold(padded, 2 * radius + 1)[0].T
    if centre is not None:
        rows = torch.cat([rows, centre.reshape(centre.shape[0], -1).T], dim=1)
    table = torch.full((H + 2, W + 2, rows.shape[1]), float("inf"), device=guide.device, dtype=rows.dtype)
    table[1:-1, 1:-1] = rows.view(H, W, -1)
    return table.view(-1, rows.shape[1])


def _rows_at(guide: torch.Tensor, flat: torch.Tensor, radius: int) -> torch.Tensor:
    """The rows ``patch_rows`` would give for the flat pixel indexes ``flat`` (N,) only: (N, D)."""
    patch, centre = _planes(guide)
    C, H, W = patch.shape
    padded = F.pad(patch[None], (radius,) * 4, mode="replicate")[0].reshape(C, -1)
    Wp = W + 2 * radius
    d = torch.arange(2 * radius + 1, device=guide.device)
    offsets = (d[:, None] * Wp + d[None, :]).reshape(-1)              # (P,), row-major like unfold
    ys, xs = flat // W, flat % W
    index = (ys * Wp + xs)[:, None] + offsets[None]                   # (N, P)
    rows = padded[:, index].permute(1, 0, 2).reshape(flat.numel(), -1)  # channel-major, like unfold
    if centre is not None:
        rows = torch.cat([rows, centre.reshape(centre.shape[0], -1)[:, flat].T], dim=1)
    return rows


def _index_dtype(H: int, W: int) -> torch.dtype:
    """int32 for flat pixel indexes where they fit: a CPU's index_select reads them about 1.5x
    faster than int64, and the lookups are most of PatchMatch's time."""
    return torch.int32 if H * W < 2 ** 31 else torch.int64


@dataclass(frozen=True)
class _KeyTable:
    """A keyframe's ``patch_rows`` and what looking them up needs."""

    rows: torch.Tensor     # ((H + 2) * (W + 2), D), the ring +inf
    near: torch.Tensor     # (2, 1) float: (-1, -1), the ring's near side
    far: torch.Tensor      # (2, 1) float: (W, H), its far side
    W: int
    index: torch.dtype

    @classmethod
    def of(cls, rows: torch.Tensor, H: int, W: int) -> "_KeyTable":
        if rows.dim() != 2 or rows.shape[0] != (H + 2) * (W + 2):
            raise ValueError(f"patchmatch_repair: key_rows {tuple(rows.shape)} are not patch_rows of a "
                             f"{W}x{H} key")
        near = torch.full((2, 1), -1.0, device=rows.device)
        far = torch.tensor([[float(W)], [float(H)]], device=rows.device)
        return cls(rows, near, far, W, _index_dtype(H + 2, W + 2))


def _cost(target_rows: torch.Tensor, key: _KeyTable, cand: torch.Tensor) -> torch.Tensor:
    """Mean squared difference (N,) of each selected pixel's patch and the key's patch at ``cand`` (2, N) (x, y).

    A candidate counts where it rounds to a pixel of the key; anywhere else it is clamped
    onto the +inf ring around it and costs +inf, so it loses to any match inside."""
    at = cand.round().clamp_(min=key.near, max=key.far).to(key.index)
    index = at[1].mul(key.W + 2).add_(at[0]).add_(key.W + 3)       # (y + 1) (W + 2) + (x + 1)
    return key.rows.index_select(0, index).sub_(target_rows).square_().mean(dim=1)


def _subpixel(target_rows: torch.Tensor, key: _KeyTable, best: torch.Tensor, best_cost: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Matches refined below a pixel: a parabola through the costs one pixel either side, per axis.

    Costs are taken at whole pixels, so a match found by the search is anywhere within
    half a pixel of where it lands; fine lines carried from there would shimmer."""
    centre = best.round()
    c0 = _cost(target_rows, key, centre)
    refined = centre.clone()
    for axis in (0, 1):
        step = torch.zeros_like(centre)
        step[axis] = 1.0
        lo = _cost(target_rows, key, centre - step)
        hi = _cost(target_rows, key, centre + step)
        curve = lo - 2.0 * c0 + hi
        ok = torch.isfinite(lo) & torch.isfinite(hi) & (curve > 1e-12)
        shift = torch.where(ok, (lo - hi) / (2.0 * curve.clamp_min(1e-12)), torch.zeros_like(c0)).clamp(-0.5, 0.5)
        refined[axis] = centre[axis] + shift
    return refined, torch.minimum(best_cost, c0)


def patchmatch_repair(target: torch.Tensor, key: torch.Tensor, flow: torch.Tensor, select: torch.Tensor,
                      p: PatchMatchParams = PatchMatchParams(), seed: int = 0,
                      key_rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The flow target -> key re-searched by PatchMatch on the selected pixels.

    target, key: (B, C, H, W) float32 guides of the two frames (e.g. ACEScct sources);
    flow: (B, 2, H, W) target -> key, the starting correspondence; select: (B, 1, H, W)
    bool, the pixels to repair (the others keep their flow and take part only as
    neighbours to propagate from); key_rows: ``patch_rows(key[0], p.radius)`` when the
    caller keeps it (B = 1). Returns (flow (B, 2, H, W) float32, cost (B, 1, H, W): the
    mean squared guide difference of each pixel's patch at its match, +inf where not
    selected). A match only ever replaces the flow's own when its patch is closer; it is
    then refined below a pixel (``_subpixel``).
    """
    B, C, H, W = target.shape
    out = flow.clone(memory_format=torch.contiguous_format)   # written through views below
    cost_map = torch.full((B, 1, H, W), float("inf"), device=target.device)
    repaired = torch.zeros_like(select)           # the pixels whose match the search moved
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    for b in range(B):
        flat = torch.nonzero(select[b, 0].reshape(-1), as_tuple=True)[0]
        if flat.numel() == 0:
            continue
        ys, xs = flat // W, flat % W
        table = _KeyTable.of(key_rows if key_rows is not None and B == 1 else patch_rows(key[b], p.radius), H, W)
        target_rows = _rows_at(target[b], flat, p.radius)
        grid = torch.stack([xs, ys]).to(flow.dtype)                         # (2, N)
        field = (flow[b].reshape(2, -1).clone())                             # offsets of every pixel, flat
        best = field.index_select(1, flat) + grid                            # absolute matches (2, N)
        best_cost = _cost(target_rows, table, best)
        start, start_cost = best.clone(), best_cost.clone()
        # Each neighbour (at every jump) as a flat index.
        neighbours = torch.stack([((ys + dy).clamp(0, H - 1) * W + (xs + dx).clamp(0, W - 1))
                                  for jump in p.jumps for dy, dx in ((0, -jump), (0, jump), (-jump, 0), (jump, 0))]
                                 ).to(_index_dtype(H, W))
        for _ in range(p.iterations):
            # Pixels matched as well as the footage allows are done: later rounds search the rest.
            act = torch.nonzero(best_cost > p.converged, as_tuple=True)[0]
            if act.numel() == 0:
                break
            # index_select and index_copy_ rather than indexing with a tensor: the same values,
            # and on a CPU 2-3x faster for these sizes.
            a_flat, a_grid, a_rows = flat.index_select(0, act), grid.index_select(1, act), target_rows.index_select(0, act)
            a_best, a_cost = best.index_select(1, act), best_cost.index_select(0, act)
            for neighbour in neighbours.index_select(1, act):
                # The neighbour's offset, taken from this pixel: the match it would make here.
                cand = field.index_select(1, neighbour).add_(a_grid)
                cost = _cost(a_rows, table, cand)
                better = cost < a_cost
                a_best = torch.where(better[None], cand, a_best)
                a_cost = torch.where(better, cost, a_cost)
                field.index_copy_(1, a_flat, a_best - a_grid)
            r_search = p.search_radius
            while r_search >= 1.0:
                jitter = (torch.rand((2, act.numel()), generator=generator) * 2.0 - 1.0).to(field.device)
                cand = a_best + r_search * jitter
                cost = _cost(a_rows, table, cand)
                better = cost < a_cost
                a_best = torch.where(better[None], cand, a_best)
                a_cost = torch.where(better, cost, a_cost)
                r_search *= 0.5
            field.index_copy_(1, a_flat, a_best - a_grid)
            best.index_copy_(1, act, a_best)
            best_cost.index_copy_(0, act, a_cost)
        # Only a match the search moved is refined. Where it found nothing closer than the
        # flow's own match, the flow (sub-pixel already) stays as it was.
        moved = best_cost < start_cost
        shifted = torch.nonzero(moved, as_tuple=True)[0]
        refined, refined_cost = _subpixel(target_rows.index_select(0, shifted), table, best.index_select(1, shifted),
                                          best_cost.index_select(0, shifted))
        best = start.index_copy(1, shifted, refined)
        best_cost = start_cost.index_copy(0, shifted, refined_cost)
        out[b].view(2, -1).index_copy_(1, flat, best - grid)
        cost_map[b, 0].view(-1).index_copy_(0, flat, best_cost)
        # A look-alike is a match that jumped away from the flow: only those are checked.
        repaired[b, 0].reshape(-1)[flat] = moved & ((best - start).abs().amax(dim=0) > p.outlier)
    if p.median > 1:
        # A lone match far from its neighbours' is a look-alike, not the same surface: where
        # the source is plain, a patch also matches where the artist painted something else
        # (specks of a local effect strewn around it). Repairs that agree with their
        # neighbourhood survive the median; isolated ones take the neighbourhood's offset.
        # Matches near the flow's own are not look-alikes and are not checked.
        out = _drop_outliers(out, repaired, p.median, p.outlier)
    return out, cost_map


def _drop_outliers(field: torch.Tensor, select: torch.Tensor, size: int, limit: float) -> torch.Tensor:
    """``field`` (B, 2, H, W) where each selected pixel more than ``limit`` px from the median of its
    ``size`` x ``size`` neighbourhood (edges replicated) takes that median.

    The median is taken at the selected pixels only (a gather of their neighbours), not over
    the frame: the same values as ``median_filter`` there, at the cost of the selection."""
    B, _, H, W = field.shape
    r = size // 2
    d = torch.arange(-r, r + 1, device=field.device)
    out = field.clone()
    for b in range(B):
        flat = torch.nonzero(select[b, 0].reshape(-1), as_tuple=True)[0]
        if flat.numel() == 0:
            continue
        ys, xs = flat // W, flat % W
        ny = (ys[:, None, None] + d[None, :, None]).clamp(0, H - 1)
        nx = (xs[:, None, None] + d[None, None, :]).clamp(0, W - 1)
        index = (ny * W + nx).reshape(-1)                                   # (N * size^2,)
        values = field[b].reshape(2, -1)
        med = values[:, index].view(2, flat.numel(), size * size).median(dim=2).values   # (2, N)
        own = values[:, flat]
        far = (own - med).abs().amax(dim=0) > limit
        out[b].reshape(2, -1)[:, flat] = torch.where(far[None], med, own)
    return out
