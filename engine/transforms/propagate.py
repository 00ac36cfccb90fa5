"""``propagate``: the artist's keyframe images carried across the plate along its motion.

For every frame the neighbouring keyframes (one before, one after; only one outside
the keyed range) are warped to it along chained frame-to-frame optical flow and blended
by ``engine.synth`` (error-aware, edit carried as a residual over the source frame,
``structure`` and ``motion`` from the job's controls). At a keyframe the keyframe image
itself comes out, bit for bit (float32, before the writer's half conversion).

Order independence: a frame's result depends only on the frame number, because every
chain f -> k is always built by the same recurrence from the keyframe towards f
(identity at k, one ``chain_step`` per frame), and the pairwise flows are rounded to
float16 whether they come fresh or from the cache (the cache stores float16). Memory
holds are: the chain states of the current keyframe neighbours (at most ``MAX_STATES``,
and at most ``CHAIN_BUDGET`` bytes, per keyframe, checkpointed with a stride beyond that, so never more than the keyframe
spacing and never growing with the clip), a few pairwise flows, and the two keyframe
images and their source frames.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from engine.errors import CancelledError
from engine.flow import FlowPair, local_range, resolve_flow_method, warp
from engine.flow_cache import FlowCache, cached_flow_pair, frame_digest
from engine.job import Job
from engine.keyframes import check_keyframes, load_keyframe_image, load_keyframe_matte
from engine.synth import ChainState, Direction, SynthParams, chain_step, identity_chain, key_code, key_patch_rows, \
    synthesise, visibility_from_flows
from engine.transforms import TransformContext

MAX_STATES = 64   # chain states kept per keyframe before checkpointing with a stride
CHAIN_BUDGET = 2 * 2 ** 30   # bytes of chain states per keyframe: fewer, wider-spaced checkpoints at 4K
FLOW_SIDE = 2048  # the longest side flows are estimated at (larger frames: downscaled, flow brought back)
MATTE_CARRYING = frozenset({"vfx"})
_PAIRS_KEPT = 4   # pairwise flows kept in memory (sequential access needs 1-2)


class PropagateTransform:
    """Keyframe propagation. ``apply`` works on (H, W, C) float32 ACEScg; alpha untouched."""

    def __init__(self, job: Job, context: TransformContext, flow_method: str = "torch",
                 cache: FlowCache | None = None, search: str = "patchmatch") -> None:
        self.job = job
        self.context = context
        self.device = torch.device(context.device)
        self.size = context.size
        w, h = context.size
        self.params = SynthParams.from_controls(job.controls.motion, job.controls.structure, w, h)
        if search == "flow":
            # Along the chained flow alone: no PatchMatch repair (faster, smears where the flow fails).
            self.params = replace(self.params, patch=replace(self.params.patch, iterations=0))
        elif search == "full":
            # PatchMatch at every pixel, as EbSynth does: the best match everywhere, at a cost.
            self.params = replace(self.params, patch_below=math.inf)
        elif search != "patchmatch":
            raise ValueError(f"search must be 'patchmatch', 'full' or 'flow', got {search!r}")
        # A chain state is a flow and a visibility, 12 bytes a pixel: at 4K 64 of them would be 6 GB.
        self.max_states = max(8, min(MAX_STATES, CHAIN_BUDGET // (w * h * 12)))
        self.flow_method = resolve_flow_method(flow_method, self.device)
        # The flow cache's files are written beside the synthesis, not in its way (engine.flow_cache).
        self.cache = cache if cache is not None else FlowCache(background=True)
        self.keys = list(job.keyframes)  # sorted by frame (the parser sorts them)
        self.key_frames = [k.frame for k in self.keys]
        self.first, self.last = context.frames
        self._pairs: OrderedDict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = OrderedDict()
        self._digests: OrderedDict[int, str] = OrderedDict()
        self._states: dict[int, dict[int, ChainState]] = {}   # key frame -> {frame: state}
        self._key_data: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # key frame -> (image, source)
        # vfx: the keyframes' alpha (where the artist painted the effect) is carried too and
        # comes out as the frame's alpha, for the compositor to isolate or grade the effect.
        self.carry_matte = job.transform.name in MATTE_CARRYING
        self._mattes: dict[int, torch.Tensor] = {}   # key frame -> (1, 1, H, W)
        self._codes: dict[int, tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], torch.Tensor | None]] = {}

    @classmethod
    def from_job(cls, job: Job, context: TransformContext) -> "PropagateTransform":
        check_keyframes(job, context.colour, context.size, context.device)
        params = job.transform.params
        return cls(job, context, flow_method=params.get("flow", "torch"), search=params.get("search", "patchmatch"))

    # -- reading -----------------------------------------------------------

    def _tensor(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, C) numpy -> (1, 3, H, W) float32 on the device."""
        return torch.from_numpy(np.ascontiguousarray(image[..., :3], dtype=np.float32)).to(
            self.device).permute(2, 0, 1)[None].contiguous()

    def _source(self, frame: int) -> torch.Tensor:
        return self._tensor(self.context.source(frame))

    def _digest(self, frame: int, size: tuple[int, int]) -> str:
        """The content hash of source ``frame`` as the flow sees it (``size``: the (h, w) it is
        estimated at), from the host's copy: no copy back from the device."""
        if frame not in self._digests:
            self._digests[frame] = frame_digest(self.context.source(frame)[..., :3], extra=f"flow input {size}")
            if len(self._digests) > 4 * _PAIRS_KEPT:
                self._digests.popitem(last=False)
        return self._digests[frame]

    def _pair(self, frame: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Flows between ``frame`` and ``frame + 1``: (fwd, bwd, vis_fwd, vis_bwd), float16-rounded."""
        if frame in self._pairs:
            self._pairs.move_to_end(frame)
            return self._pairs[frame]
        a, b = self._source(frame), self._source(frame + 1)
        _, _, h, w = a.shape
        scale = min(1.0, FLOW_SIDE / max(h, w))
        if scale < 1.0:
            # 4K and up: the flow is estimated on frames at most FLOW_SIDE wide and brought back
            # up (bilinear, lengths scaled): its detail is far below a 4K frame's, its memory
            # and time a quarter. The synthesis itself stays at full resolution.
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            a = F.interpolate(a, size=size, mode="area")
            b = F.interpolate(b, size=size, mode="area")
        size = (a.shape[-2], a.shape[-1])
        pair: FlowPair = cached_flow_pair(self.cache, a, b, self.flow_method,
                                          digest_a=self._digest(frame, size), digest_b=self._digest(frame + 1, size))
        # The cache keeps float16: round fresh flows the same way so results never depend on
        # whether a pair was computed or read back (frame order, farm chunks, re-runs).
        fwd = pair.forward.to(self.device).half().float()
        bwd = pair.backward.to(self.device).half().float()
        if scale < 1.0:
            fwd = F.interpolate(fwd, size=(h, w), mode="bilinear", align_corners=False) * (w / fwd.shape[-1])
            bwd = F.interpolate(bwd, size=(h, w), mode="bilinear", align_corners=False) * (w / bwd.shape[-1])
        beta = self.params.fb_beta
        entry = (fwd, bwd, visibility_from_flows(fwd, bwd, beta), visibility_from_flows(bwd, fwd, beta))
        self._pairs[frame] = entry
        if len(self._pairs) > _PAIRS_KEPT:
            self._pairs.popitem(last=False)
        return entry

    # -- chains --------------------------------------------------------------

    def _span(self, key_index: int, towards: int) -> int:
        """How many frames the chain of keyframe ``key_index`` may reach in direction ``towards`` (+1/-1)."""
        k = self.key_frames[key_index]
        if towards > 0:
            end = self.key_frames[key_index + 1] if key_index + 1 < len(self.keys) else self.last
        else:
            end = self.key_frames[key_index - 1] if key_index > 0 else self.first
        return abs(end - k)

    def _chain(self, key_index: int, frame: int) -> ChainState:
        """The mapping ``frame`` -> keyframe, built from the keyframe outwards (deterministic)."""
        k = self.key_frames[key_index]
        step = 1 if frame > k else -1  # direction from the key towards the frame
        states = self._states.setdefault(k, {})
        stride = max(1, math.ceil(self._span(key_index, step) / self.max_states))
        g = frame
        while g != k and g not in states:
            g -= step
        state = states[g] if g != k else None
        if state is None:
            w, h = self.size
            state = identity_chain(1, h, w, self.device)
        last_kept = g
        while g != frame:
            if self.context.cancelled():   # a chain far from its keyframe computes many flows
                raise CancelledError(f"cancelled while carrying keyframe {k} towards frame {frame}")
            g += step
            # frame g -> its neighbour g - step (towards the key)
            if step > 0:   # key before: g -> g-1 is the backward flow of pair (g-1, g)
                _, bwd, _, vis_b = self._pair(g - 1)
                state = chain_step(bwd, vis_b, state)
            else:          # key after: g -> g+1 is the forward flow of pair (g, g+1)
                fwd, _, vis_f, _ = self._pair(g)
                state = chain_step(fwd, vis_f, state)
            if abs(g - k) % stride == 0 or g == frame:
                states[g] = state
                if last_kept != k and abs(last_kept - k) % stride != 0 and last_kept in states:
                    del states[last_kept]  # only checkpoints and the latest frame stay
                last_kept = g
        return state

    def _forget_except(self, keep: set[int]) -> None:
        for k in list(self._states):
            if k not in keep:
                del self._states[k]
        for k in list(self._key_data):
            if k not in keep:
                del self._key_data[k]
        for k in list(self._mattes):
            if k not in keep:
                del self._mattes[k]
        for k in list(self._codes):
            if k not in keep:
                del self._codes[k]

    def _key(self, key_index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(keyframe image after strength, source at the keyframe), (1, 3, H, W) each."""
        key = self.keys[key_index]
        if key.frame not in self._key_data:
            source = self._source(key.frame)
            image = self._tensor(load_keyframe_image(key, key_index, self.context.colour, self.size,
                                                     self.context.device))
            if key.strength != 1.0:
                image = source + key.strength * (image - source)
            self._key_data[key.frame] = (image, source)
        return self._key_data[key.frame]

    # -- frames --------------------------------------------------------------

    def _neighbours(self, frame: int) -> list[int]:
        """Indexes of the keyframes that make ``frame``: itself if keyed, else the one or two around it."""
        frames = self.key_frames
        i = int(np.searchsorted(frames, frame, side="right")) - 1  # last key <= frame
        if i >= 0 and frames[i] == frame:
            return [i]
        return [j for j in (i, i + 1) if 0 <= j < len(frames)]

    def directions(self, frame: int) -> list[Direction]:
        """The neighbouring keyframes of a non-key ``frame`` as seen from it (chains built as needed).

        Public for benchmarks and diagnostics (baselines use the very same chains).
        """
        frames = self.key_frames
        neighbours = self._neighbours(frame)
        self._forget_except({frames[j] for j in neighbours})
        span = (frames[neighbours[-1]] - frames[neighbours[0]]) if len(neighbours) == 2 else 1
        directions = []
        with torch.no_grad():
            for j in neighbours:
                key_image, key_source = self._key(j)
                temporal = 1.0 - abs(frame - frames[j]) / span if len(neighbours) == 2 else 1.0
                code, bounds, rows = self._key_code(j)
                directions.append(Direction(key_image, key_source, self._chain(j, frame), max(temporal, 1e-3),
                                            code, bounds, rows))
        return directions

    def _key_code(self, key_index: int) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], torch.Tensor | None]:
        """The keyframe and its source in ACEScct, their 3x3 ranges and the source's patch rows
        for PatchMatch: made once per keyframe."""
        k = self.key_frames[key_index]
        if k not in self._codes:
            image, source = self._key(key_index)
            code = key_code(image, source)
            rows = key_patch_rows(code, self.params) if self.params.patch.iterations > 0 else None
            self._codes[k] = (code, local_range(code), rows)
        return self._codes[k]

    def _matte(self, key_index: int) -> torch.Tensor:
        """Keyframe ``key_index``'s effect matte, (1, 1, H, W) 0..1 (0 where it has no alpha)."""
        key = self.keys[key_index]
        if key.frame not in self._mattes:
            w, h = self.size
            alpha = load_keyframe_matte(key, self.size, self.context.device)
            self._mattes[key.frame] = (torch.zeros(1, 1, h, w, device=self.device) if alpha is None
                                       else torch.from_numpy(alpha).to(self.device)[None, None])
        return self._mattes[key.frame]

    def close(self) -> None:
        """Waits for the flow cache's writes still under way (the pipeline calls it when a run ends)."""
        self.cache.flush()

    def apply(self, frame: int, image: np.ndarray) -> np.ndarray:
        """(H, W, C) float32 ACEScg source frame -> its propagated version, same shape; alpha kept
        (vfx: (H, W, 4) whatever C, its alpha the carried effect matte)."""
        frames = self.key_frames
        neighbours = self._neighbours(frame)
        out = image.copy()
        if self.carry_matte and out.shape[-1] != 4:
            out = np.concatenate([out[..., :3], np.zeros(out.shape[:2] + (1,), np.float32)], axis=-1)
        if len(neighbours) == 1 and frames[neighbours[0]] == frame:
            self._forget_except({frame})
            key_image, _ = self._key(neighbours[0])
            out[..., :3] = key_image[0].permute(1, 2, 0).cpu().numpy()
            if self.carry_matte:
                out[..., 3] = self._matte(neighbours[0])[0, 0].cpu().numpy()
            return out
        source = self._tensor(image)
        directions = self.directions(frame)
        with torch.no_grad():
            result = synthesise(source, directions, self.params)
            if self.carry_matte:
                out[..., 3] = self._carried_matte(neighbours, directions)[0, 0].cpu().numpy()
        out[..., :3] = result[0].permute(1, 2, 0).cpu().numpy()
        return np.ascontiguousarray(out, dtype=np.float32)

    def _carried_matte(self, neighbours: list[int], directions: list[Direction]) -> torch.Tensor:
        """The keyframes' mattes along their chains, mixed by time and visibility: (1, 1, H, W)."""
        total = None
        weight = None
        for j, d in zip(neighbours, directions):
            w = d.temporal * d.chain.visibility.clamp(0.0, 1.0) + 1e-4 * d.temporal  # never 0/0
            carried = warp(self._matte(j), d.chain.flow) * w
            total = carried if total is None else total + carried
            weight = w if weight is None else weight + w
        assert total is not None and weight is not None
        return (total / weight).clamp(0.0, 1.0)
