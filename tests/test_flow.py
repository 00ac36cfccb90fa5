"""Optical flow (engine.flow) and its cache (engine.flow_cache), on small images, CPU."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

cv2 = pytest.importorskip("cv2")

from engine.flow import (FlowPair, endpoint_error, estimate_flow, flow_pair, forward_backward,  # noqa: E402
                         motion_boundaries, opencv_dis_flow, perceptual, warp)
from engine.flow_cache import FlowCache, cached_flow_pair, frame_digest  # noqa: E402

SINTEL = Path(__file__).resolve().parents[2] / "shared" / "data" / "sintel"


# ----------------------------------------------------------------------------- helpers

def texture(H: int, W: int, seed: int = 0, sigma: float = 2.0) -> torch.Tensor:
    """(1, 3, H, W) float32 linear texture: Gaussian-blurred noise, so flow is well posed."""
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.random((H, W, 3)).astype(np.float32), (0, 0), sigma)
    t = (t - t.min()) / (t.max() - t.min())
    return torch.from_numpy(t ** 2.2 * 0.8).permute(2, 0, 1)[None].contiguous()


def _pixels(H: int, W: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(float(H)), torch.arange(float(W)), indexing="ij")
    return torch.stack([xs, ys])  # (2, H, W)


def affine_pair(H: int, W: int, M, d, seed: int = 0):
    """a = T; b = T moved by q = M (p - c) + c + d. Returns a, b, true flow_ab (1, 2, H, W)."""
    T = texture(H, W, seed)
    P = _pixels(H, W)
    c = torch.tensor([(W - 1) / 2, (H - 1) / 2]).view(2, 1, 1)
    M = torch.tensor(M, dtype=torch.float32)
    dd = torch.tensor(d, dtype=torch.float32).view(2, 1, 1)
    src = torch.einsum("ij,jhw->ihw", torch.linalg.inv(M), P - c - dd) + c
    b = warp(T, (src - P)[None])
    truth = torch.einsum("ij,jhw->ihw", M, P - c) + c + dd - P
    return T, b, truth[None]


def interior(H: int, W: int, margin: int) -> torch.Tensor:
    m = torch.zeros(1, 1, H, W, dtype=torch.bool)
    m[..., margin:H - margin, margin:W - margin] = True
    return m


def psnr(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> float:
    mse = float(((x - y) ** 2).mean(1, keepdim=True)[mask].mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def square_scene(H: int = 96, W: int = 128, shift: int = 6):
    """A textured square moving right by ``shift`` px over a static textured background."""
    bg = texture(H, W, seed=1)
    fg = texture(H, W, seed=2, sigma=1.5) * 1.5
    y0, x0, s = 30, 30, 36
    a, b = bg.clone(), bg.clone()
    a[..., y0:y0 + s, x0:x0 + s] = fg[..., y0:y0 + s, x0:x0 + s]
    b[..., y0:y0 + s, x0 + shift:x0 + shift + s] = fg[..., y0:y0 + s, x0:x0 + s]
    return a, b, (y0, x0, s, shift)


# ----------------------------------------------------------------------------- encoding

def test_perceptual_shape_and_log_compression():
    x = torch.full((2, 3, 4, 5), 0.18)
    x[0, :, 0, 0] = 1000.0
    p = perceptual(x)
    assert p.shape == (2, 1, 4, 5) and p.dtype == torch.float32
    assert abs(float(p[1, 0, 0, 0]) - 0.4135) < 2e-3  # ACEScct of mid grey
    assert float(p[0, 0, 0, 0]) < 1.2                   # 1000 stays a small number
    assert torch.isfinite(perceptual(torch.tensor([math.nan, math.inf, -5.0]).view(1, 3, 1, 1))).all()


# ----------------------------------------------------------------------------- accuracy

def test_translation_subpixel():
    a, b, truth = affine_pair(96, 128, [[1, 0], [0, 1]], (3.4, -1.7))
    flow = estimate_flow(a, b)
    assert flow.shape == (1, 2, 96, 128) and flow.dtype == torch.float32
    assert endpoint_error(flow, truth, interior(96, 128, 8)) < 0.2


def test_rotation_and_zoom():
    th, s = math.radians(3.0), 1.03
    M = [[s * math.cos(th), -s * math.sin(th)], [s * math.sin(th), s * math.cos(th)]]
    a, b, truth = affine_pair(96, 128, M, (1.0, 0.5), seed=4)
    mask = interior(96, 128, 10)
    epe = endpoint_error(estimate_flow(a, b), truth, mask)
    dis = endpoint_error(opencv_dis_flow(a, b), truth, mask)
    assert epe < 0.5
    assert epe < 1.5 * dis + 0.05, (epe, dis)  # competitive with OpenCV DIS medium


def test_dis_reference_agrees_on_translation():
    a, b, truth = affine_pair(96, 128, [[1, 0], [0, 1]], (-2.6, 4.1), seed=5)
    mask = interior(96, 128, 10)
    ft, fd = estimate_flow(a, b), opencv_dis_flow(a, b)
    assert fd.shape == ft.shape and fd.dtype == torch.float32
    assert endpoint_error(fd, truth, mask) < 0.3
    assert endpoint_error(ft, fd, mask) < 0.3


def test_hdr_spot_does_not_break_flow():
    a, b, truth = affine_pair(96, 128, [[1, 0], [0, 1]], (2.3, 1.2), seed=6)
    # The same bright spot (x1000) on both frames, moving with the texture.
    spot = torch.zeros(1, 1, 96, 128)
    spot[..., 40:46, 50:56] = 1.0
    spot_b = warp(spot, (-truth))  # moves with the scene: b(q) = a(q - d)
    a_hdr = a * (1 + 999 * spot)
    b_hdr = b * (1 + 999 * spot_b)
    flow = estimate_flow(a_hdr, b_hdr)
    assert torch.isfinite(flow).all()
    assert endpoint_error(flow, truth, interior(96, 128, 8)) < 0.25


def test_deterministic():
    a, b, _ = affine_pair(64, 80, [[1, 0], [0, 1]], (1.3, 0.6), seed=7)
    assert torch.equal(estimate_flow(a, b), estimate_flow(a, b))


# ----------------------------------------------------------------------------- occlusion / warp

def test_warp_identity_and_shift():
    img = texture(20, 24)
    assert torch.allclose(warp(img, torch.zeros(1, 2, 20, 24)), img)
    f = torch.zeros(1, 2, 20, 24)
    f[:, 0] = 2.0  # out(p) = img(p + (2, 0))
    assert torch.allclose(warp(img, f)[..., :-2], img[..., 2:], atol=1e-6)


def test_warp_sharp_keeps_detail_without_ringing_past_the_neighbourhood():
    from engine.flow import warp_sharp

    # A thin bright line on a dark ground with a step beside it, moved by a fraction of a pixel.
    img = torch.full((1, 1, 12, 40), 0.1)
    img[..., 10] = 1.0
    img[..., 25:] = 0.8
    flow = torch.zeros(1, 2, 12, 40)
    flow[:, 0] = 0.3
    sharp, soft = warp_sharp(img, flow), warp(img, flow)
    assert float(sharp[..., 10].min()) > float(soft[..., 10].max())      # the line stays brighter than bilinear's
    assert float(sharp.min()) >= 0.1 - 1e-6 and float(sharp.max()) <= 1.0 + 1e-6
    raw = torch.nn.functional.grid_sample(img, torch.stack([(torch.arange(40.0) + 0.3) / 39 * 2 - 1,
                                                            torch.zeros(40)], -1).expand(1, 12, 40, 2),
                                          mode="bicubic", padding_mode="border", align_corners=True)
    assert float(raw.min()) < 0.1 - 1e-3                                  # bicubic alone rings below the ground


def test_warp_sharp_at_points_gives_the_whole_frames_values_there():
    from engine.flow import warp_sharp

    torch.manual_seed(2)
    img, flow = torch.rand(2, 3, 60, 80), torch.randn(2, 2, 60, 80) * 4.0
    whole = warp_sharp(img, flow).reshape(2, 3, -1)
    # A few points, and 3001 of the 4800, in order.
    for points in (torch.tensor([0, 79, 81, 2377, 4799]), torch.randperm(4800)[:3001].sort().values):
        at = warp_sharp(img, flow, points=points)
        assert at.shape == (2, 3, points.numel())
        assert torch.equal(at, whole[:, :, points])
    assert warp_sharp(img, flow, points=torch.tensor([], dtype=torch.long)).shape == (2, 3, 0)


def test_occlusion_square_and_warp_reproduces_frame():
    a, b, (y0, x0, s, shift) = square_scene()
    pair = flow_pair(a, b, "torch")
    assert isinstance(pair, FlowPair)
    assert pair.occlusion_forward.shape == (1, 1, 96, 128) and pair.occlusion_forward.dtype == torch.bool

    # Background of A covered by the square in B: strip [x0 + s, x0 + s + shift) of A,
    # and disoccluded strip [x0, x0 + shift) of B (its backward flow finds no match).
    covered = torch.zeros(1, 1, 96, 128, dtype=torch.bool)
    covered[..., y0 + 2:y0 + s - 2, x0 + s + 1:x0 + s + shift - 1] = True
    revealed = torch.zeros_like(covered)
    revealed[..., y0 + 2:y0 + s - 2, x0 + 1:x0 + shift - 1] = True
    # The smooth (quadratic + median) flow blurs the motion edge by a pixel or two, so the
    # forward-backward check finds about half of a 6 px strip; measured ~0.55 / ~0.6.
    assert pair.occlusion_forward[covered].float().mean() > 0.35
    assert pair.occlusion_backward[revealed].float().mean() > 0.35

    # Mostly clean away from the square (dilated) and the frame border.
    far = interior(96, 128, 4)
    far[..., y0 - 6:y0 + s + 6, x0 - 6:x0 + s + shift + 6] = False
    assert pair.occlusion_forward[far].float().mean() < 0.03
    assert pair.occlusion_backward[far].float().mean() < 0.03

    # The square's motion is found, and the background is still.
    inside_sq = torch.zeros_like(covered)
    inside_sq[..., y0 + 6:y0 + s - 6, x0 + 6:x0 + s - 6] = True
    assert abs(float(pair.forward[:, 0:1][inside_sq].mean()) - shift) < 0.2
    assert float(pair.forward[far.expand(1, 2, 96, 128)].abs().mean()) < 0.1

    # Warping B by the forward flow reproduces A where A is visible in B.
    visible = ~pair.occlusion_forward & interior(96, 128, 2)
    assert psnr(warp(b, pair.forward), a, visible) > 30.0  # measured ~33 dB

    # Motion boundaries lie along the square's edges, not in the still background.
    mb = motion_boundaries(pair.forward, threshold=0.5)
    assert mb.shape == (1, 1, 96, 128)
    assert mb[far].float().mean() < 0.02
    assert mb[..., y0:y0 + s, x0 - 3:x0 + 3].any()


def test_forward_backward_out_of_frame_is_occluded():
    f = torch.zeros(1, 2, 8, 10)
    f[:, 0] = 3.0
    occ = forward_backward(f, -f)
    assert occ[..., :, -3:].all() and not occ[..., :, :-3].any()


# ----------------------------------------------------------------------------- cache

def test_cache_miss_hit_and_corrupt(tmp_path, monkeypatch):
    import engine.flow_cache as fc

    a, b, _ = affine_pair(48, 64, [[1, 0], [0, 1]], (1.5, -0.5), seed=8)
    cache = FlowCache(tmp_path)
    calls = []
    real = fc.flow_pair
    monkeypatch.setattr(fc, "flow_pair", lambda *x, **k: calls.append(1) or real(*x, **k))

    first = cached_flow_pair(cache, a, b)                 # miss: computed and stored
    second = cached_flow_pair(cache, a, b)                # hit: read back
    assert len(calls) == 1
    assert torch.allclose(first.forward, second.forward, atol=2e-3)
    assert torch.equal(first.occlusion_backward, second.occlusion_backward)
    assert second.forward.dtype == torch.float32 and second.occlusion_forward.dtype == torch.bool

    cached_flow_pair(cache, a, b, smoothness=0.01)       # other parameters: other key
    cached_flow_pair(cache, a, b * 1.01)                 # other pixels: other key
    assert len(calls) == 3
    files = sorted(tmp_path.rglob("*.npz"))
    assert len(files) == 3 and not list(tmp_path.rglob("*.tmp"))

    for f in files:                                       # corrupt every entry
        f.write_bytes(b"not a zip file")
    again = cached_flow_pair(cache, a, b)                 # a miss, recomputed, not a crash
    assert len(calls) == 4 and torch.allclose(again.forward, first.forward, atol=2e-3)
    assert cache.get("ab" * 32) is None


def test_cache_gives_back_the_float16_flows_exactly_and_reads_the_earlier_layout(tmp_path):
    a, b, _ = affine_pair(40, 56, [[1, 0], [0, 1]], (2.25, -1.0), seed=3)
    pair = flow_pair(a, b)
    pair.forward[0, 0, 0, 0] = -1234.5                    # a sign and a large value in the planes
    cache = FlowCache(tmp_path)
    cache.put("cd" * 32, pair)
    back = cache.get("cd" * 32)
    assert back is not None
    assert torch.equal(back.forward, pair.forward.half().float())
    assert torch.equal(back.backward, pair.backward.half().float())
    assert torch.equal(back.occlusion_forward, pair.occlusion_forward)
    assert torch.equal(back.occlusion_backward, pair.occlusion_backward)

    # An entry written before the flows were split into byte planes: one float16 array each.
    old = cache.path("ef" * 32)
    old.parent.mkdir(parents=True, exist_ok=True)
    with open(old, "wb") as fh:
        np.savez_compressed(fh, forward=pair.forward.numpy().astype(np.float16),
                            backward=pair.backward.numpy().astype(np.float16),
                            occlusion_forward=np.packbits(pair.occlusion_forward.numpy().ravel()),
                            occlusion_backward=np.packbits(pair.occlusion_backward.numpy().ravel()),
                            mask_shape=np.array(pair.occlusion_forward.shape, dtype=np.int64))
    earlier = cache.get("ef" * 32)
    assert earlier is not None and torch.equal(earlier.forward, back.forward)
    assert torch.equal(earlier.occlusion_backward, back.occlusion_backward)

def test_a_background_cache_writes_the_same_entries_off_the_callers_thread(tmp_path, monkeypatch):
    import threading

    import engine.flow_cache as fc

    a, b, _ = affine_pair(40, 56, [[1, 0], [0, 1]], (2.25, -1.0), seed=3)
    pair = flow_pair(a, b)
    FlowCache(tmp_path / "sync").put("cd" * 32, pair)
    writers: list[str] = []
    real = fc._write_entry

    def recording(path, *arrays):
        writers.append(threading.current_thread().name)
        real(path, *arrays)

    monkeypatch.setattr(fc, "_write_entry", recording)
    cache = FlowCache(tmp_path / "background", background=True)
    kept = pair.forward.clone()
    cache.put("cd" * 32, pair)
    pair.forward.add_(100.0)                       # the caller's pair changes after put: the entry does not
    back = cache.get("cd" * 32)                    # waits for the write under way
    for n in range(5):                             # never more than writers + 1 writes wait
        cache.put(f"{n:02d}" * 32, pair)
        assert len(cache._pending) <= cache.writers + 1
    cache.flush()
    assert back is not None and torch.equal(back.forward, kept.half().float())
    assert len(writers) == 6 and all(name.startswith("retake-flow-cache") for name in writers)
    assert not cache._pending and len(list((tmp_path / "background").rglob("*.npz"))) == 6
    with np.load(FlowCache(tmp_path / "sync").path("cd" * 32)) as one, np.load(cache.path("cd" * 32)) as two:
        assert one.files == two.files and all(np.array_equal(one[k], two[k]) for k in one.files)


def test_a_frames_digest_changes_with_any_pixel_its_shape_and_its_resize():
    rng = np.random.default_rng(5)
    frame = rng.random((36, 48, 3), dtype=np.float32)
    digest = frame_digest(frame)
    assert digest.startswith("xxh3:") and len(digest) == 5 + 32 and frame_digest(frame.copy()) == digest
    nudged = frame.copy()
    nudged[35, 47, 2] = np.nextafter(nudged[35, 47, 2], np.float32(2.0))   # one ulp of one channel
    assert frame_digest(nudged) != digest
    assert frame_digest(frame.reshape(48, 36, 3)) != digest                    # same bytes, other shape
    assert frame_digest(frame, extra="flow input (18, 24)") != digest
    # A tensor is hashed as its float32 bytes, wherever it lives.
    assert frame_digest(torch.from_numpy(frame)) == digest == frame_digest(frame.astype(np.float64))


def test_several_cache_writers_write_the_entries_a_single_one_writes(tmp_path, monkeypatch):
    import threading
    import time

    import engine.flow_cache as fc

    a, b, _ = affine_pair(40, 56, [[1, 0], [0, 1]], (1.5, 0.75), seed=4)
    pair = flow_pair(a, b)
    threads: set[str] = set()
    real = fc._write_entry

    def slow(path, *arrays):
        threads.add(threading.current_thread().name)
        time.sleep(0.05)
        real(path, *arrays)

    monkeypatch.setattr(fc, "_write_entry", slow)
    several = FlowCache(tmp_path / "three", background=True, writers=3)
    for n in range(6):
        several.put(f"{n:02d}" * 32, pair)
        assert len(several._pending) <= 4
    several.flush()
    assert len(threads) == 3 and all(name.startswith("retake-flow-cache") for name in threads)
    single = FlowCache(tmp_path / "one", background=True, writers=1)
    for n in range(6):
        single.put(f"{n:02d}" * 32, pair)
    single.flush()
    for n in range(6):
        with np.load(single.path(f"{n:02d}" * 32)) as one, np.load(several.path(f"{n:02d}" * 32)) as two:
            assert one.files == two.files and all(np.array_equal(one[k], two[k]) for k in one.files)
    with pytest.raises(ValueError):
        FlowCache(tmp_path, writers=0)


def test_a_background_write_that_fails_is_a_warning_and_no_entry(tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache's folder would go")
    cache = FlowCache(blocked, background=True)
    a, b, _ = affine_pair(32, 40, [[1, 0], [0, 1]], (1.0, 0.5), seed=2)
    cache.put("cd" * 32, flow_pair(a, b))             # returns at once; the write fails on the worker
    with pytest.warns(RuntimeWarning, match="could not write .*estimated again next time"):
        cache.flush()
    assert cache.get("cd" * 32) is None and blocked.read_text().startswith("a file")


def test_cache_root_from_environment(monkeypatch, tmp_path):
    from engine.flow_cache import default_cache_root

    monkeypatch.setenv("RETAKE_CACHE", str(tmp_path))
    assert default_cache_root() == tmp_path / "flow"
    assert FlowCache().root == tmp_path / "flow"


# ----------------------------------------------------------------------------- real frames

def _load_sintel(i: int, width: int = 256) -> torch.Tensor:
    img = cv2.imread(str(SINTEL / f"frame_{i:04d}.png"), cv2.IMREAD_COLOR)
    img = img[:, :, ::-1].astype(np.float32) / 255.0
    h = round(img.shape[0] * width / img.shape[1])
    img = cv2.resize(img, (width, h), interpolation=cv2.INTER_AREA)
    lin = np.where(img <= 0.04045, img / 12.92, ((img + 0.055) / 1.055) ** 2.4)  # sRGB -> linear
    return torch.from_numpy(np.ascontiguousarray(lin, dtype=np.float32)).permute(2, 0, 1)[None]


@pytest.mark.skipif(not (SINTEL / "frame_0016.png").is_file(), reason=f"Sintel frames not found in {SINTEL}")
def test_sintel_photometric_error_close_to_dis():
    ours, theirs = [], []
    for i in (16, 19, 22):
        a, b = _load_sintel(i), _load_sintel(i + 1)
        pt, pd = flow_pair(a, b, "torch"), flow_pair(a, b, "dis")
        assert torch.isfinite(pt.forward).all()
        keep = ~(pt.occlusion_forward | pd.occlusion_forward)  # the same pixels for both
        pa, pb = perceptual(a), perceptual(b)
        ours.append(float((warp(pb, pt.forward) - pa).abs()[keep].mean()))
        theirs.append(float((warp(pb, pd.forward) - pa).abs()[keep].mean()))
    assert sum(ours) < 1.3 * sum(theirs), (ours, theirs)


# ----------------------------------------------------------------------------- solver internals

def test_median3_network_matches_sort_median():
    import torch.nn.functional as F
    from engine.flow import median_filter

    x = torch.randn(2, 2, 17, 23)
    x[0, 0, :4] = 1.0  # ties
    ref = F.unfold(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3).view(2, 2, 9, -1).median(2).values
    assert torch.equal(median_filter(x, 3), ref.view(2, 2, 17, 23))


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 207_360])
def test_robust_range_selection_equals_torch_quantile_bit_for_bit(n):
    from engine.flow import _quantiles

    torch.manual_seed(n)
    x = torch.randn(2, n) * 5.0
    x[:, : n // 3] = 0.25     # ties
    for qs in ((0.005, 0.995), (0.0, 1.0), (0.5,)):
        assert torch.equal(_quantiles(x, qs), torch.quantile(x, torch.tensor(qs), dim=1))


def _sweeps_per_component(wx, wy, p, q, s, nb1, nb2, weights, sweeps):
    """The red-black SOR sweeps written out one flow component at a time, with the neighbours' mean."""
    def _neighbour_mean(x):
        p = F.pad(x, (1, 1, 1, 1), mode="replicate")
        return (p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]).mul_(0.25)

    for _ in range(sweeps):
        for mask in weights:
            rx = _neighbour_mean(wx).add_(nb1)
            ry = _neighbour_mean(wy).add_(nb2)
            nx = torch.addcmul(p * rx, q, ry)
            ny = torch.addcmul(s * ry, q, rx)
            wx.lerp_(nx, mask)
            wy.lerp_(ny, mask)


@pytest.mark.parametrize("size", [(6, 8), (10, 4), (34, 46)])
def test_sweeps_on_both_components_and_on_quarters_equal_the_sweeps_per_component_bit_for_bit(size):
    from engine.flow import _checkerboard, _sweep_checkerboard, _sweep_quarters

    torch.manual_seed(5)
    h, w = size
    wx, wy = torch.randn(2, 1, h, w), torch.randn(2, 1, h, w)
    p, q, s, nb1, nb2 = (torch.rand(2, 1, h, w) for _ in range(5))
    red, black = _checkerboard(h, w, wx.device, wx.dtype)
    weights = (1.6 * red, 1.6 * black)
    ref_x, ref_y = wx.clone(), wy.clone()
    _sweeps_per_component(ref_x, ref_y, p, q, s, nb1, nb2, weights, 3)
    # As _solve_level holds them: for the neighbours' sum, not their mean.
    coefficients = (torch.cat([p, s], dim=1) * 0.25, q * 0.25, torch.cat([nb1, nb2], dim=1) * 4.0)
    both = torch.cat([wx, wy], dim=1)
    _sweep_checkerboard(both, coefficients, weights, 3)
    quartered = torch.cat([wx, wy], dim=1)
    _sweep_quarters(quartered, coefficients, 1.6, 3)
    reference = torch.cat([ref_x, ref_y], dim=1)
    assert torch.equal(both, reference)
    assert torch.equal(quartered, reference)
    assert not torch.equal(reference, torch.cat([wx, wy], dim=1))


def test_flow_pair_batch_equals_separate_calls_and_defaults_match_cache_key():
    from engine.flow import TORCH_FLOW_DEFAULTS
    import inspect

    a, b, _ = affine_pair(48, 64, [[1, 0], [0, 1]], (1.2, -0.7), seed=9)
    pair = flow_pair(a, b, "torch")
    assert torch.allclose(pair.forward, estimate_flow(a, b), atol=1e-5)
    assert torch.allclose(pair.backward, estimate_flow(b, a), atol=1e-5)
    sig = inspect.signature(estimate_flow).parameters
    assert {k: sig[k].default for k in TORCH_FLOW_DEFAULTS} == TORCH_FLOW_DEFAULTS


def test_half_resolution_finest_level():
    a, b, truth = affine_pair(96, 128, [[1, 0], [0, 1]], (3.4, -1.7))
    flow = estimate_flow(a, b, finest_level=1)
    assert flow.shape == (1, 2, 96, 128)
    assert endpoint_error(flow, truth, interior(96, 128, 8)) < 0.4


def test_auto_flow_is_dis_on_the_cpu_and_torch_on_a_gpu():
    from engine.flow import resolve_flow_method

    assert resolve_flow_method("auto", "cpu") == "dis"
    assert resolve_flow_method("auto", torch.device("cuda")) == "torch"   # naming a device needs no GPU
    assert resolve_flow_method("auto", "mps") == "torch"
    assert resolve_flow_method("torch", "cpu") == "torch" and resolve_flow_method("dis", "cuda") == "dis"
    with pytest.raises(ValueError, match="unknown flow method 'raft'"):
        resolve_flow_method("raft", "cpu")


def test_a_small_fast_object_does_not_drag_the_ground_around_it(tmp_path):
    """The demo plate squeezed into 8 frames: its ball crosses at ~40 px a frame (640x360) over
    textured ground that pans with the camera. Coarse to fine alone, the coarse levels spread the
    ball's motion over the ground below it and the fine levels cannot pull it back (15 % of the
    frame more than 5 px off the known camera motion on frames 1004 -> 1005); picking each
    pixel's start among its neighbours' flows on the coarse levels halves that."""
    from engine import demo
    from engine.colour import Colour
    from engine.io.exr import read_image
    from tests.test_recipes import demo_motion

    colour = Colour()
    plate = demo.write_demo_plate(tmp_path / "plate", 8, colour)

    def frame(number: int) -> torch.Tensor:
        aces = read_image(plate.replace("####", f"{number:04d}"))[..., :3]
        small = cv2.resize(colour.convert(np.ascontiguousarray(aces), "ACES2065-1", "ACEScg"), (640, 360),
                           interpolation=cv2.INTER_AREA)
        return torch.from_numpy(small).permute(2, 0, 1)[None].contiguous()

    a, b = frame(1004), frame(1005)
    ys, xs = np.mgrid[0:360, 0:640].astype(np.float64)
    points = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    moved = demo_motion(1004, 1005, 640 / 960) @ points
    truth = (moved[:2] / moved[2] - points[:2]).reshape(2, 360, 640)
    off = {}
    for width in (0, 160):
        flow = estimate_flow(a, b, fusion_width=width)[0].numpy()
        off[width] = float((np.hypot(*(flow - truth)) > 5.0).mean())
    print("share of the frame > 5 px off the camera motion, without / with fusion:", off)
    assert off[0] > 0.12, "the plain coarse-to-fine flow no longer fails here: this test shows nothing"
    assert off[160] < 0.6 * off[0]


# Ops that make the host wait on the device, or copy Python data to it: none may run inside
# a CUDA graph's capture (engine.cuda_graphs), so none may run inside the flow solve.
_WAITS_ON_THE_DEVICE = ("aten._local_scalar_dense", "aten.item", "aten.is_nonzero", "aten.nonzero",
                        "aten.masked_select", "aten.unique", "aten._unique2", "aten.lift_fresh",
                        "aten.lift_fresh_copy")


def _dispatched_ops(run) -> list[tuple[str, dict]]:
    """Every aten op ``run()`` dispatches, in order, with its keyword arguments."""
    from torch.utils._python_dispatch import TorchDispatchMode

    seen: list[tuple[str, dict]] = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append((str(func.overloadpacket), dict(kwargs or {})))
            return func(*args, **(kwargs or {}))

    with Record():
        run()
    return seen


def test_the_flow_solve_never_waits_on_the_device_so_a_cuda_graph_can_capture_it():
    from engine.flow import _ESTIMATE_DEFAULTS, _estimate_normalised, _normalised_pair

    a, b, _ = affine_pair(64, 96, [[1, 0], [0, 1]], (2.3, -1.1), seed=4)
    ia, ib = _normalised_pair(a, b)
    x, y = torch.cat([ia, ib]), torch.cat([ib, ia])
    ops = _dispatched_ops(lambda: _estimate_normalised(x, y, **_ESTIMATE_DEFAULTS))
    assert len(ops) > 1000                                    # the whole solve was seen
    waits = sorted({name for name, _ in ops if name in _WAITS_ON_THE_DEVICE})
    assert not waits, f"the flow solve waits on the device ({waits}): it can no longer be captured"
    moves = sorted({name for name, kwargs in ops if kwargs.get("device") is not None and name == "aten._to_copy"})
    assert not moves, "the flow solve copies between devices"
    # The check itself sees what it looks for: a scalar read and a tensor made from Python data.
    probe = [name for name, _ in _dispatched_ops(lambda: (float(x.sum()), torch.tensor([1.0]) + x))]
    assert "aten._local_scalar_dense" in probe and "aten.lift_fresh" in probe


def test_cuda_graphs_are_opt_in_and_for_cuda_only(monkeypatch):
    from engine.cuda_graphs import GraphedFunction, cuda_graphs_enabled

    monkeypatch.delenv("RETAKE_CUDA_GRAPHS", raising=False)
    assert not cuda_graphs_enabled("cuda") and not cuda_graphs_enabled("cpu")
    monkeypatch.setenv("RETAKE_CUDA_GRAPHS", "1")
    assert cuda_graphs_enabled("cuda") and cuda_graphs_enabled(torch.device("cuda", 0))
    assert not cuda_graphs_enabled("cpu") and not cuda_graphs_enabled("mps")
    # Asked for on the CPU anyway (the environment set, a CPU job): the eager solve, the same flow.
    a, b, _ = affine_pair(48, 64, [[1, 0], [0, 1]], (1.2, -0.7), seed=9)
    assert torch.allclose(flow_pair(a, b).forward, estimate_flow(a, b), atol=1e-5)
    with pytest.raises(ValueError, match="cuda tensors"):
        GraphedFunction(lambda t: t * 2)(torch.ones(3))
