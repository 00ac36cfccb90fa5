"""Keyframe propagation: the functional core (torch, any device, no state).

Conventions (as ``engine.flow``):

* images are (B, C, H, W) float32 scene-linear working space (ACEScg), unclamped;
* flows are (B, 2, H, W) float32 pixels (x, y); ``flow_ab`` maps a pixel p of frame A to
  p + flow_ab(p) in frame B, so ``warp(b, flow_ab)`` looks like ``a`` where visible;
* visibilities are (B, 1, H, W) float32 in [0, 1] (1 = reliably visible along the chain).

How a frame f between keyframes k0 < f < k1 is made
----------------------------------------------------
1. **Chains.** Frame-to-frame flows are composed into f -> k (``compose_flow``:
   flow_f->k = flow_f->g + warp(flow_g->k, flow_f->g), g the neighbour of f towards k),
   and visibility is multiplied along the same chain (``compose_visibility``), so a
   pixel occluded at any step of the way is not trusted.
2. **Per direction** (``direction_estimate``): the keyframe image K and the source at the
   keyframe S_k are warped to f (Kw, Sw). The edit is carried as what the keyframe
   *changed*, D = Kw - Sw, over the current source frame S, all in ACEScct code values
   (``engine.encoding``; written k, s, sw below):

       E = k + a (s - sw) + b (blur(D) - D)

   In ACEScct a grade is an offset, so the edit carried as a difference is right at every
   exposure, and a dark pixel cannot be pushed below zero by a brighter neighbour's
   difference (carried in linear, an inked line over a bright source went negative).
   ``a`` and ``b`` come from ``structure``: a = 0 (structure 1) carries the keyframe's
   pixels themselves (E = Kw); a = 1, b = 0 (structure 5) is the residual transfer
   E = S + D (the source's own changes between k and f show through, the edit's detail
   is kept); b = 1 (structure 9) keeps only the low-frequency part of the edit,
   E = S + blur(D), so the result has the source's spatial detail everywhere.
   E is decoded back to linear; HDR values survive (ACEScct is exact up to half max).
3. **Confidence** (error-aware): c = visibility * exp(-(e / tau)^2), e the warping error
   mean|sw - s| over the channels (judged in ACEScct, slightly blurred).
3b. **PatchMatch repair** (``engine.patchmatch``, EbSynth's idea): where no direction's
   confidence reaches ``patch_below`` (0.997: the flow's match is measurably inexact;
   smoothed across a moving edge, occluded, lost, or only a fraction of a pixel off), each
   3x3 patch of the frame's source (ACEScct) is searched for in each keyframe's source,
   starting from the flow, and the keyframe is warped from the best match; the match's
   patch difference stands in for the chain's visibility there. On ``bench/propagation.py``
   (640x360 and 1024x436, torch flow) this takes the margin over the plain flow-warp blend
   from +2.3 to +5.6 dB (moving) and +1.0 to +4.1 dB (Sintel), within 0.35 dB of searching
   every pixel. The threshold trades against
   ``structure``: a patch found where the frame has detail of its own that no keyframe
   shows (rain, a second layer) makes the key source look like the frame, so less of that
   detail shows through; 0.999 gained another 0.3 dB but halved what structure 5 lets
   through in ``tests/test_propagate.py``. Searching every pixel (``patch_below`` = inf,
   the job's ``"search": "full"``) costs more (1.3x the time on the benchmark's 960x540
   real footage, 1.6x on its moving scene, flow included) and matches more look-alikes.
   Frames wider than ``PATCH_SIDE`` are searched at that width.

There is no temporal guide (the previous *output* carried along the flow, as EbSynth
has): every frame is made from its keyframes and the source alone, so frames can be made
in any order, farm chunks and resumed renders are bit-identical, and the result's
warping error is already below the ground truth's in the benchmark.
4. **Blend** (``blend``), in ACEScct: each direction's edit is split into its *look* (the
   edit spread smoothly from where that keyframe is reliable, a normalised convolution
   over ``fallback_sigma``; where the keyframe sees nothing nearby, its look over the
   whole frame) and its *detail* (the rest). The looks are mixed by temporal weight
   alone, so a grade changes at one pace over the whole frame: no seam or ramp where
   new content enters from one side, no blob of the other keyframe's colour in a
   disocclusion. The detail is chosen per
   pixel by a softmax of log(temporal weight) + log(c + eps): where one direction is
   good it wins; where both are bad the *less bad* one still wins (the softmax of two
   tiny confidences follows their ratio), and the temporal distance decides only
   between equals.
5. **Fallback** where even the best direction is poor (occluded in both, or the warp
   clearly does not match): the detail fades out, leaving the source frame under the
   shared look. So a disocclusion seen in neither keyframe gets the source's content
   with the neighbourhood's edit (colour change) instead of smear.

``motion`` (1-9) sets how strongly the result follows the source's motion: it scales the
spatial smoothing of the chained flow (motion 1: a smooth, rigid-ish motion field;
motion 9: the raw per-pixel flow), the forward-backward strictness (``beta``) and the
error tolerance ``tau`` (higher motion = stricter, so mismatched pixels are dropped
sooner). At a keyframe the caller returns the keyframe image itself (exact).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from engine.encoding import acescct_decode, acescct_encode
from engine.filters import gaussian_blur
from engine.flow import forward_backward, local_range, warp, warp_sharp
from engine.patchmatch import PatchMatchParams, patch_rows, patchmatch_repair

__all__ = ["SynthParams", "ChainState", "compose_flow", "compose_visibility",
           "chain_step", "identity_chain", "visibility_from_flows", "direction_estimate", "blend", "normalised_conv",
           "synthesise", "Direction", "key_code", "key_patch_rows", "PATCH_SIDE"]

_EPS = 1e-6
# PatchMatch searches frames at most this wide (1080p at half size, as ``engine.flow`` and
# the propagate transform estimate flow at most 2048 wide): its cost and its keyframe
# patches (27 floats a pixel) stay those of a 1K frame.
PATCH_SIDE = 1024


@dataclass(frozen=True)
class SynthParams:
    """Numbers derived from the job's sliders for a given output size.

    flow_sigma: px of Gaussian smoothing of each chained flow (0 = raw flow).
    fb_beta: px^2 slack of the forward-backward occlusion check (smaller = stricter).
    tau: warping-error tolerance in ACEScct code values (smaller = stricter).
    carry_source: ``a`` above, 0..1.  low_pass: ``b`` above, 0..1.
    edit_sigma: px of the blur that makes the edit low-frequency when low_pass > 0.
    fallback_sigma: px of the normalised convolution that spreads the edit into holes.
    fallback_below: best-direction confidence under which the fallback is mixed in.
    """

    flow_sigma: float
    fb_beta: float
    tau: float
    carry_source: float
    low_pass: float
    edit_sigma: float
    fallback_sigma: float
    fallback_below: float = 0.2
    patch: PatchMatchParams = PatchMatchParams()
    patch_below: float = 0.997

    @classmethod
    def from_controls(cls, motion: int, structure: int, width: int, height: int) -> "SynthParams":
        m = (min(max(motion, 1), 9) - 1) / 8.0
        s = (min(max(structure, 1), 9) - 1) / 8.0
        side = float(max(width, height))
        return cls(
            flow_sigma=(1.0 - m) ** 3 * 0.02 * side,
            fb_beta=2.0 + (0.3 - 2.0) * m,
            tau=0.20 + (0.05 - 0.20) * m,
            carry_source=min(1.0, 2.0 * s),
            low_pass=max(0.0, 2.0 * s - 1.0),
            edit_sigma=max(1.0, 0.015 * side),
            fallback_sigma=max(2.0, 0.05 * side),
        )


def compose_flow(flow_ab: torch.Tensor, flow_bc: torch.Tensor) -> torch.Tensor:
    """flow_ac = flow_ab + warp(flow_bc, flow_ab). All (B, 2, H, W) float32 pixels."""
    return flow_ab + warp(flow_bc, flow_ab)


def compose_visibility(vis_ab: torch.Tensor, vis_bc: torch.Tensor, flow_ab: torch.Tensor) -> torch.Tensor:
    """vis_ac = vis_ab * vis_bc sampled where A's pixels land in B. (B, 1, H, W) in [0, 1]."""
    return vis_ab * warp(vis_bc, flow_ab).clamp(0.0, 1.0)


@dataclass(frozen=True)
class ChainState:
    """The mapping of one frame to one keyframe: flow (B, 2, H, W) and visibility (B, 1, H, W)."""

    flow: torch.Tensor
    visibility: torch.Tensor


def identity_chain(B: int, H: int, W: int, device: torch.device | str) -> ChainState:
    """The chain of a keyframe to itself: zero flow, fully visible."""
    return ChainState(torch.zeros(B, 2, H, W, device=device), torch.ones(B, 1, H, W, device=device))


def chain_step(step_flow: torch.Tensor, step_visibility: torch.Tensor, rest: ChainState) -> ChainState:
    """Prepend one frame-to-frame step (f -> g) to the chain g -> k, giving f -> k."""
    return ChainState(compose_flow(step_flow, rest.flow),
                      compose_visibility(step_visibility, rest.visibility, step_flow))


def visibility_from_flows(flow_ab: torch.Tensor, flow_ba: torch.Tensor, beta: float) -> torch.Tensor:
    """(B, 1, H, W) float32: 1 where A's pixel passes the forward-backward check into B."""
    return (~forward_backward(flow_ab, flow_ba, beta=beta)).float()


@dataclass(frozen=True)
class Direction:
    """One neighbouring keyframe as seen from frame f.

    key_image: (B, 3, H, W) the keyframe as the artist made it (after strength);
    key_source: (B, 3, H, W) the source plate at the keyframe;
    chain: the mapping f -> keyframe; temporal: the weight from temporal distance (> 0).
    """

    key_image: torch.Tensor
    key_source: torch.Tensor
    chain: ChainState
    temporal: float
    # (key_image, key_source) in ACEScct stacked on channels, and its ``local_range``: the
    # same for every frame the keyframe reaches, so the caller may keep them.
    key_code: torch.Tensor | None = None
    key_bounds: tuple[torch.Tensor, torch.Tensor] | None = None
    # ``key_patch_rows(key_code, ...)``: the key source's patches for PatchMatch, the same
    # for every frame too.
    key_rows: torch.Tensor | None = None


def key_code(key_image: torch.Tensor, key_source: torch.Tensor) -> torch.Tensor:
    """(B, 6, H, W): a keyframe and the source at its frame in ACEScct, as ``direction_estimate`` warps them."""
    return torch.cat([acescct_encode(key_image), acescct_encode(key_source)], dim=1)


@dataclass(frozen=True)
class _Warped:
    """One direction at frame f, before its estimate is formed (ACEScct code values).

    sw: (B, 3, H, W) the key source warped to f; confidence (B, 1, H, W); flow (B, 2, H, W)
    the (smoothed, maybe repaired) flow f -> keyframe; visibility (B, 1, H, W). The keyframe
    itself is warped last (``_with_key``), once its flow is final: kw (B, 3, H, W)."""

    sw: torch.Tensor
    confidence: torch.Tensor
    flow: torch.Tensor
    visibility: torch.Tensor
    kw: torch.Tensor | None = None


def _code_and_bounds(d: Direction) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    code = d.key_code if d.key_code is not None else key_code(d.key_image, d.key_source)
    return code, d.key_bounds if d.key_bounds is not None else local_range(code)


def _half(code: torch.Tensor, bounds: tuple[torch.Tensor, torch.Tensor], part: slice
          ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    return code[:, part], (bounds[0][:, part], bounds[1][:, part])


_KEY, _SOURCE = slice(0, 3), slice(3, 6)


def _confidence(sw: torch.Tensor, se: torch.Tensor, visibility: torch.Tensor, p: SynthParams) -> torch.Tensor:
    err = gaussian_blur((sw - se).abs().mean(dim=1, keepdim=True), 1.0)
    return visibility * torch.exp(-(err / p.tau) ** 2)


def _warp_direction(se: torch.Tensor, d: Direction, p: SynthParams) -> _Warped:
    """The key source of ``d`` warped to the frame whose source is ``se`` (ACEScct), with confidence."""
    flow = gaussian_blur(d.chain.flow, p.flow_sigma)
    visibility = d.chain.visibility.clamp(0.0, 1.0)
    # Warped in ACEScct with a sharp (bicubic, range-clamped) sampler: the edit's detail
    # stays crisp, and a highlight cannot ring into its dark surround.
    source, bounds = _half(*_code_and_bounds(d), _SOURCE)
    sw = warp_sharp(source, flow, bounds)
    return _Warped(sw, _confidence(sw, se, visibility, p), flow, visibility)


def _with_key(d: Direction, w: _Warped) -> _Warped:
    """``w`` with the keyframe warped along its final flow."""
    key, bounds = _half(*_code_and_bounds(d), _KEY)
    return replace(w, kw=warp_sharp(key, w.flow, bounds))


def _patch_scale(H: int, W: int) -> float:
    return min(1.0, PATCH_SIDE / max(H, W))


def _shrink(x: torch.Tensor, scale: float) -> torch.Tensor:
    size = (max(1, round(x.shape[-2] * scale)), max(1, round(x.shape[-1] * scale)))
    return F.interpolate(x, size=size, mode="area")


def key_patch_rows(code: torch.Tensor, p: SynthParams) -> torch.Tensor:
    """The key source's patches as PatchMatch looks them up: code (1, 6, H, W) from ``key_code``."""
    guide = code[:, 3:]
    scale = _patch_scale(*guide.shape[-2:])
    return patch_rows((_shrink(guide, scale) if scale < 1.0 else guide)[0], p.patch.radius)


def _repair_direction(se: torch.Tensor, d: Direction, w: _Warped, select: torch.Tensor, p: SynthParams) -> _Warped:
    """``w`` with its flow re-searched by PatchMatch on ``select`` (B, 1, H, W) bool.

    Each selected patch of this frame's source is looked for in the keyframe's source,
    starting from the flow; the match's patch difference becomes the pixel's visibility
    (a good match is trusted even where the chain was occluded), and the keyframe is
    taken from there. Pixels outside ``select`` are unchanged. Frames wider than
    ``PATCH_SIDE`` are searched at that width (the matches found there, scaled back up,
    seed the full-resolution warp and its confidence), as the flow itself is.
    """
    code, bounds = _code_and_bounds(d)
    H, W = se.shape[-2:]
    scale = _patch_scale(H, W)
    if scale < 1.0:
        small_se, small_key = _shrink(se, scale), _shrink(code[:, _SOURCE], scale)
        h, wd = small_se.shape[-2:]
        small_flow = _shrink(w.flow, scale) * (wd / W)
        small_select = F.adaptive_max_pool2d(select.float(), (h, wd)) > 0
        found, small_cost = patchmatch_repair(small_se, small_key, small_flow, small_select, p.patch,
                                              key_rows=d.key_rows)
        repaired = F.interpolate(found, size=(H, W), mode="bilinear", align_corners=False) * (W / wd)
        repaired = torch.where(select, repaired, w.flow)
        cost = F.interpolate(small_cost, size=(H, W), mode="nearest")
    else:
        repaired, cost = patchmatch_repair(se, code[:, _SOURCE], w.flow, select, p.patch, key_rows=d.key_rows)
    match = torch.exp(-cost / p.tau ** 2)        # 0 where not searched (cost inf)
    visibility = torch.where(select, torch.maximum(w.visibility, match), w.visibility)
    # The key source is warped again at the selected pixels only (elsewhere the flow is
    # unchanged); the confidence, a blur of the error, is remade over their bounding box.
    B, C = w.sw.shape[:2]
    anywhere = select.reshape(-1, H * W).any(dim=0)                        # (H * W,)
    points = torch.nonzero(anywhere, as_tuple=True)[0]
    source, source_bounds = _half(code, bounds, _SOURCE)
    found_sw = warp_sharp(source, repaired, source_bounds, points=points)   # (B, 3, N)
    sw = w.sw.clone()
    flat_sw = sw.view(B, C, -1)
    flat_sw[:, :, points] = torch.where(select.reshape(B, 1, -1)[:, :, points], found_sw, flat_sw[:, :, points])
    ys, xs = points // W, points % W
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    box = (slice(None), slice(None), slice(y0, y1), slice(x0, x1))
    confidence = w.confidence.clone()
    confidence[box] = torch.where(select[box], _confidence(sw[box], se[box], visibility[box], p), confidence[box])
    return _Warped(sw, confidence, repaired, visibility)


def _estimate(se: torch.Tensor, w: _Warped, p: SynthParams) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    residual = w.kw - w.sw
    estimate = w.kw + p.carry_source * (se - w.sw)
    if p.low_pass > 0:
        estimate = estimate + p.low_pass * (gaussian_blur(residual, p.edit_sigma) - residual)
    return acescct_decode(estimate), residual, w.confidence


def direction_estimate(source: torch.Tensor, d: Direction, p: SynthParams) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The frame as this keyframe predicts it along the chained flow (no PatchMatch repair).

    source: (B, 3, H, W) source frame f, linear ACEScg. Returns (estimate (B, 3, H, W) linear
    ACEScg, residual D (B, 3, H, W) = warped keyframe - warped key source in ACEScct code
    values, confidence (B, 1, H, W) in [0, 1]).
    """
    se = acescct_encode(source)
    return _estimate(se, _with_key(d, _warp_direction(se, d, p)), p)


def normalised_conv(x: torch.Tensor, w: torch.Tensor, sigma: float) -> torch.Tensor:
    """blur(x w) / blur(w): x spread from where w holds, 0 where no weight is near.

    x: (B, C, H, W); w: (B, 1, H, W) >= 0. What it makes is as smooth as the blur, so a
    wide one runs on a grid ``sigma / 2`` times coarser and is interpolated back: its cost
    stays that of a small blur whatever sigma (4K frames, wide looks and bands).
    """
    factor = int(sigma // 2) if sigma >= 4 else 1
    if factor <= 1:
        num, den = gaussian_blur(x * w, sigma), gaussian_blur(w, sigma)
        return num / den.clamp_min(_EPS) * (den > _EPS)
    h, wd = x.shape[-2:]
    num = gaussian_blur(F.avg_pool2d(x * w, factor, ceil_mode=True), sigma / factor)
    den = gaussian_blur(F.avg_pool2d(w, factor, ceil_mode=True), sigma / factor)
    small = num / den.clamp_min(_EPS) * (den > _EPS)
    return F.interpolate(small, size=(h, wd), mode="bilinear", align_corners=False)


def _density(w: torch.Tensor, sigma: float) -> torch.Tensor:
    """blur(w) at the resolution ``normalised_conv`` uses, back at full size: (B, 1, H, W)."""
    factor = int(sigma // 2) if sigma >= 4 else 1
    if factor <= 1:
        return gaussian_blur(w, sigma)
    small = gaussian_blur(F.avg_pool2d(w, factor, ceil_mode=True), sigma / factor)
    return F.interpolate(small, size=w.shape[-2:], mode="bilinear", align_corners=False)


def blend(source: torch.Tensor, estimates: list[torch.Tensor], residuals: list[torch.Tensor],
          confidences: list[torch.Tensor], temporals: list[float], p: SynthParams) -> torch.Tensor:
    """Error-aware blend of the directions: the look by time, the detail by confidence.

    All tensors (B, C, H, W) as in ``direction_estimate``; temporals: weights > 0.
    Each direction's edit D_i (ACEScct) is split into its *look* L_i, the edit spread
    smoothly from where that keyframe is reliable (``normalised_conv`` over
    ``fallback_sigma``; where the keyframe sees nothing nearby, its look over the whole
    frame), and the rest, its *detail*. The looks are mixed by temporal weight alone, so
    a grade moves from one keyframe's to the next at the same pace everywhere in the
    frame: no seam where new content enters the frame from one side, no blob of the
    other keyframe's colour in a disocclusion. The detail is chosen per pixel by the softmax of
    log(temporal) + log(confidence), as before: where one direction is good it wins;
    where both are bad the less bad one wins. Where even the best is poor, the detail
    fades out and the frame is the source under the look (the fallback).
    Returns (B, 3, H, W) float32 linear, finite wherever the inputs are.
    """
    se = acescct_encode(source)
    looks = []
    for r, c in zip(residuals, confidences):
        # Where a keyframe reliably sees nothing nearby (content entering the frame, a wide
        # disocclusion), its look there is its look over the whole frame: every keyframe then
        # takes part everywhere, at its temporal weight.
        local = normalised_conv(r, c, p.fallback_sigma)
        seen = (4.0 * _density(c, p.fallback_sigma)).clamp(0.0, 1.0)
        overall = (r * c).sum(dim=(2, 3), keepdim=True) / c.sum(dim=(2, 3), keepdim=True).clamp_min(_EPS)
        looks.append(seen * local + (1.0 - seen) * overall)
    total = sum(temporals)
    look = sum(t * lk for t, lk in zip(temporals, looks)) / max(total, _EPS)
    logits = torch.stack([math.log(max(t, _EPS)) + torch.log(c + _EPS)
                          for c, t in zip(confidences, temporals)])  # (D, B, 1, H, W)
    weights = torch.softmax(logits, dim=0)
    # Each estimate, with its own look swapped for the shared one.
    detail = sum(w * (acescct_encode(e) - se - lk) for w, e, lk in zip(weights, estimates, looks))
    best = torch.stack(confidences).amax(dim=0)
    mix = (best / p.fallback_below).clamp(0.0, 1.0)
    return acescct_decode(se + look + mix * detail)


def synthesise(source: torch.Tensor, directions: list[Direction], p: SynthParams) -> torch.Tensor:
    """Frame f from its one or two neighbouring keyframes.

    source: (B, 3, H, W) float32 linear; directions: 1 or 2 ``Direction``.
    Returns (B, 3, H, W) float32 linear, NaN-free (non-finite results become the source).
    """
    se = acescct_encode(source)
    warped = [_warp_direction(se, d, p) for d in directions]
    if p.patch.iterations > 0:
        # Where no direction is to be trusted (the flow smoothed across a moving edge, an
        # occlusion), PatchMatch re-searches each keyframe for this frame's patches. Where one
        # direction is good already the blend takes it, so only the rest is searched.
        best = torch.stack([w.confidence for w in warped]).amax(dim=0)
        select = F.max_pool2d((best < p.patch_below).float(), 5, 1, 2) > 0
        if bool(select.any()):
            warped = [_repair_direction(se, d, w, select, p) for d, w in zip(directions, warped)]
    estimates, residuals, confidences = [], [], []
    for w in (_with_key(d, w) for d, w in zip(directions, warped)):
        e, r, c = _estimate(se, w, p)
        estimates.append(e)
        residuals.append(r)
        confidences.append(c)
    out = blend(source, estimates, residuals, confidences, [d.temporal for d in directions], p)
    return torch.where(torch.isfinite(out), out, source)
