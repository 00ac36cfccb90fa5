"""PatchMatch repair of the flow (engine.patchmatch) and its use in propagation.

Known answers: a texture shifted by a known integer offset that the starting flow
misses, and the moving-square plate of tests/test_propagate.py, where the flow is
smoothed across the square's edges.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.colour import Colour
from engine.errors import JobError
from engine.flow_cache import FlowCache
from engine.job import parse_job
from engine.patchmatch import PatchMatchParams, patch_rows, patchmatch_repair
from tests.test_propagate import H, N, W, make, render, square_plate, texture

SHIFT = (4, -3)   # (x, y) px: target(p) = key(p + SHIFT)


def _shifted_pair() -> tuple[torch.Tensor, torch.Tensor]:
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    key = texture(xs, ys, seed=5)
    target = texture(xs + SHIFT[0], ys + SHIFT[1], seed=5)
    as_tensor = lambda a: torch.from_numpy(np.log2(a + 0.01)).permute(2, 0, 1)[None].float().contiguous()  # noqa: E731
    return as_tensor(target), as_tensor(key)


def _interior() -> torch.Tensor:
    select = torch.zeros(1, 1, H, W, dtype=torch.bool)
    select[..., 8:H - 8, 8:W - 8] = True
    return select


def test_a_shift_the_flow_missed_is_found_and_the_rest_is_left_alone() -> None:
    target, key = _shifted_pair()
    flow = torch.zeros(1, 2, H, W)
    select = _interior()
    repaired, cost = patchmatch_repair(target, key, flow, select)
    found = repaired[0, :, select[0, 0]]
    right = ((found[0] - SHIFT[0]).abs() < 0.5) & ((found[1] - SHIFT[1]).abs() < 0.5)
    print(f"pixels matched to the true shift: {float(right.float().mean()):.3f}")
    assert float(right.float().mean()) > 0.98
    assert float(cost[select].median()) < 1e-4          # an exact match, up to rounding
    assert torch.equal(repaired[~select.expand(-1, 2, -1, -1)], flow[~select.expand(-1, 2, -1, -1)])
    assert torch.isinf(cost[~select]).all()


def test_a_correct_flow_is_kept() -> None:
    target, key = _shifted_pair()
    flow = torch.tensor([float(SHIFT[0]), float(SHIFT[1])]).view(1, 2, 1, 1).expand(1, 2, H, W).contiguous()
    repaired, _ = patchmatch_repair(target, key, flow, _interior())
    assert torch.equal(repaired, flow)


def test_the_same_seed_gives_the_same_field_and_kept_rows_change_nothing() -> None:
    target, key = _shifted_pair()
    flow = torch.randn(1, 2, H, W) * 3.0
    p = PatchMatchParams()
    a = patchmatch_repair(target, key, flow, _interior(), p, seed=3)
    b = patchmatch_repair(target, key, flow, _interior(), p, seed=3, key_rows=patch_rows(key[0], p.radius))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_a_flow_laid_out_otherwise_in_memory_gives_the_same_field() -> None:
    # A transposed view (as a caller may hand in) is not contiguous; the repair is written
    # into the result through views, which must not land in a copy and be lost.
    target, key = _shifted_pair()
    flow = torch.randn(1, 2, W, H).transpose(-1, -2) * 3.0
    assert not flow.is_contiguous()
    a = patchmatch_repair(target, key, flow, _interior(), seed=3)
    b = patchmatch_repair(target, key, flow.contiguous(), _interior(), seed=3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], flow)


def test_a_match_outside_the_key_never_wins_and_the_edge_pixels_count() -> None:
    # The key is the target moved 6 px left, key(x) = target(x + 6): the true match of the
    # target's first 6 columns lies outside the key. Starting from that (true) flow, those
    # pixels must give it up for a match inside (cost finite); every pixel whose patch lies
    # inside the key, up to its last column, keeps it (cost 0).
    target, _ = _shifted_pair()
    key = torch.cat([target[..., 6:], target[..., -1:].expand(-1, -1, -1, 6)], dim=-1)
    flow = torch.zeros(1, 2, H, W)
    flow[:, 0] = -6.0
    select = torch.ones(1, 1, H, W, dtype=torch.bool)
    repaired, cost = patchmatch_repair(target, key, flow, select, PatchMatchParams(median=1))
    lands = torch.arange(W).view(1, 1, 1, W) + repaired[:, :1]
    assert torch.isfinite(cost).all()
    assert float(lands.min()) >= -0.5
    assert float(cost[..., 7:].max()) == 0.0
    assert torch.equal(repaired[..., 7:], flow[..., 7:])


def test_key_rows_of_another_size_are_refused() -> None:
    target, key = _shifted_pair()
    with pytest.raises(ValueError, match="not patch_rows"):
        patchmatch_repair(target, key, torch.zeros(1, 2, H, W), _interior(),
                          key_rows=patch_rows(key[0, :, :-1], 1))


@pytest.fixture(scope="module")
def colour() -> Colour:
    return Colour()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> FlowCache:
    return FlowCache(tmp_path_factory.mktemp("flowcache"))


def _square_errors(tmp_path, colour, cache, **options) -> tuple[float, float]:
    """Mean abs error on the non-key frames: (around the square's edges, everywhere)."""
    frames, truth = square_plate()
    out = render(make(tmp_path, frames, {0: truth[0], N - 1: truth[N - 1]}, colour, cache, **options), frames)
    ys, xs = np.mgrid[0:H, 0:W]
    ring, whole = [], []
    for f in range(1, N - 1):
        x0 = 20 + 5 * f
        near = (xs >= x0 - 6) & (xs < x0 + 28) & (ys >= 14) & (ys < 50)
        inside = (xs >= x0 + 3) & (xs < x0 + 19) & (ys >= 23) & (ys < 41)
        err = np.abs(out[f] - truth[f]).mean(axis=-1)
        ring.append(err[near & ~inside].mean())
        whole.append(err[6:-6, 6:-6].mean())
    return float(np.mean(ring)), float(np.mean(whole))


def test_patchmatch_repairs_the_smear_around_a_moving_object(tmp_path, colour, cache) -> None:
    with_search = _square_errors(tmp_path / "pm", colour, cache)
    flow_only = _square_errors(tmp_path / "flow", colour, cache, search="flow")
    print(f"square's edges: {with_search[0]:.4f} with PatchMatch vs {flow_only[0]:.4f} along the flow; "
          f"whole frame {with_search[1]:.4f} vs {flow_only[1]:.4f}")
    assert with_search[0] < 0.7 * flow_only[0]
    assert with_search[1] < flow_only[1]


def test_frames_wider_than_the_search_size_are_searched_smaller(tmp_path, colour, cache, monkeypatch) -> None:
    import engine.synth as synth

    full = _square_errors(tmp_path / "full", colour, cache)
    monkeypatch.setattr(synth, "PATCH_SIDE", W // 2)
    half = _square_errors(tmp_path / "half", colour, cache)
    flow_only = _square_errors(tmp_path / "flow", colour, cache, search="flow")
    print(f"square's edges: full size {full[0]:.4f}, searched at half size {half[0]:.4f}, flow only {flow_only[0]:.4f}")
    assert half[0] < 0.85 * flow_only[0]


def test_search_is_checked_in_the_job() -> None:
    base = {"plate": {"path": "p.####.exr"}, "output": {"path": "o.####.exr"},
            "keyframes": [{"frame": 1, "image": "k.exr"}]}
    assert parse_job({**base, "transform": {"name": "propagate"}}).transform.params["search"] == "patchmatch"
    with pytest.raises(JobError, match="search"):
        parse_job({**base, "transform": {"name": "propagate", "search": "exhaustive"}})
