"""On-disk cache of flow pairs, keyed by plate content.

Flow is the most expensive thing the engine derives from a plate and it depends only on
the two frames, the method and its parameters: a re-run, a slider change or a
draft-to-final step reuses it. Keys are content hashes, never file names or frame
numbers, so a re-rendered plate (new pixels) can never hit a stale entry.

Layout: ``<root>/<key[:2]>/<key>.npz``: flows as float16 split into a plane of low bytes
(stored) and one of high bytes (deflated), masks as packed bits; entries of the earlier
layout (each flow one float16 array) are still read. Writes are atomic (temporary file
in the same folder, then ``os.replace``), so a crash leaves either the old entry, the
new one or none; a corrupt or unreadable entry is a miss and is removed, never a crash.

With ``background=True`` (what the propagate transform uses) ``put`` hands the file's
encoding and writing to worker threads and returns. The float16 planes, the deflate
and the fsync took the caller 0.03-0.04 s for a 960x540 pair of real flows on the 2-core
CPU, 0.085-0.105 s for a 1080p pair of real flows and 0.33 s for one deflate cannot
shrink: a GPU frame's whole budget at 24 frames/s is 0.04 s, and none of that work needs
the device. One thread would cap a GPU's cold frames at its pace, so there is one for
every 4 CPUs (``engine.host_threads``, 1 to 4). The pair is rounded
to float16 where it is (what the file keeps: half the copy) and copied to the host on the
caller's thread; at most ``writers + 1`` writes wait; ``get`` waits for an entry still
being written, ``flush`` for all of them (the transform's ``close``), and a process that
ends with writes pending finishes them first (the worker threads are joined at exit).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
import zipfile
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import xxhash

from engine.flow import TORCH_FLOW_DEFAULTS, FlowPair, flow_pair
from engine.host_threads import background_threads

__all__ = ["FLOW_CACHE_VERSION", "FlowCache", "default_cache_root", "frame_digest", "flow_key",
           "cached_flow_pair"]

# Bump whenever the estimator's output for the same inputs changes.
FLOW_CACHE_VERSION = "retake-flow-2"


def default_cache_root() -> Path:
    """$RETAKE_CACHE/flow when set, else ~/.cache/retake/flow."""
    env = os.environ.get("RETAKE_CACHE")
    if env:
        return Path(env).expanduser() / "flow"
    return Path.home() / ".cache" / "retake" / "flow"


def frame_digest(image: torch.Tensor | np.ndarray, extra: str = "") -> str:
    """Content hash of a frame's pixels: float32 C-order bytes plus shape and ``extra`` (say, a
    resize the flow's input went through), "xxh3:" + 32 hex digits.

    image: a tensor (on any device: it is copied to the host) or a host array, any shape.
    XXH3-128 rather than sha256: 1.1 ms a 1080p frame on the 2-core CPU against 14 (the
    propagate transform hashes every frame once, on the render's thread). It is not a
    cryptographic hash, and needs not be: the keys name one studio's own frames in its own
    cache, and an accidental collision of 128-bit hashes does not happen."""
    if isinstance(image, torch.Tensor):
        image = image.detach().to("cpu", torch.float32).numpy()
    arr = np.ascontiguousarray(image, dtype=np.float32)
    h = xxhash.xxh3_128()
    h.update(f"{arr.shape}|{extra}".encode())
    h.update(memoryview(arr).cast("B"))
    return "xxh3:" + h.hexdigest()


def flow_key(digest_a: str, digest_b: str, method: str, params: dict) -> str:
    """Cache key (sha256 hex) of a flow pair: both frames' content, method, parameters, version."""
    blob = json.dumps({"a": digest_a, "b": digest_b, "method": method, "params": params,
                       "version": FLOW_CACHE_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _half_planes(name: str, flow: np.ndarray) -> dict[str, np.ndarray]:
    """A flow as float16, its bytes split into a plane of low and one of high bytes (uint8)."""
    # float16 keeps ~1/1000 px precision for flows below 64 px, 1/32 px up to 2048.
    half = np.ascontiguousarray(flow.astype("<f2"))
    pairs = half.view(np.uint8).reshape(-1, 2)
    return {f"{name}_low": np.ascontiguousarray(pairs[:, 0]), f"{name}_high": np.ascontiguousarray(pairs[:, 1]),
            f"{name}_shape": np.array(half.shape, dtype=np.int64)}


def _read_half(z: np.lib.npyio.NpzFile, name: str) -> np.ndarray:
    """The float32 flow ``_half_planes`` stored as ``name`` (or an entry of the earlier layout, one float16 array)."""
    if name in z.files:
        return z[name].astype(np.float32)
    shape = tuple(int(s) for s in z[f"{name}_shape"])
    low, high = z[f"{name}_low"], z[f"{name}_high"]
    if low.shape != high.shape or low.size != int(np.prod(shape)):
        raise ValueError(f"{name}: byte planes do not match its shape")
    return np.stack([low, high], axis=1).view("<f2").reshape(shape).astype(np.float32)


class FlowCache:
    """Flow pairs on disk under ``root`` (default: default_cache_root()).

    background: write entries on worker threads (see the module docstring); call
    ``flush`` before relying on the files being there. writers: how many (default
    ``background_threads()``); ``writers + 1`` writes may wait, which bounds the host memory
    they hold (a 1080p pair is 17 MB of float16 flows)."""

    def __init__(self, root: str | os.PathLike | None = None, *, background: bool = False,
                 writers: int | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_root()
        self.background = background
        self.writers = background_threads() if writers is None else writers
        if self.writers < 1:
            raise ValueError(f"writers must be 1 or more, got {self.writers}")
        self._writer: ThreadPoolExecutor | None = None
        self._pending: OrderedDict[str, Future] = OrderedDict()

    def path(self, key: str) -> Path:
        if len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"flow cache key must be a hex digest, got {key!r}")
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str, device: torch.device | str = "cpu") -> FlowPair | None:
        """The cached pair (flows float32, masks bool, on ``device``), or None on a miss.

        A file that cannot be read back whole is removed and reported as a miss.
        """
        if key in self._pending:
            self._settle(key)
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            with np.load(p, allow_pickle=False) as z:
                shape = tuple(int(s) for s in z["mask_shape"])
                n = int(np.prod(shape))
                fwd, bwd = (torch.from_numpy(_read_half(z, name)) for name in ("forward", "backward"))
                of = np.unpackbits(z["occlusion_forward"])[:n].reshape(shape).astype(bool)
                ob = np.unpackbits(z["occlusion_backward"])[:n].reshape(shape).astype(bool)
            if fwd.shape != bwd.shape or fwd.dim() != 4 or fwd.shape[1] != 2 or \
                    (fwd.shape[0], 1, *fwd.shape[2:]) != shape:
                raise ValueError("inconsistent shapes")
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            try:
                p.unlink()
            except OSError:
                pass
            return None
        return FlowPair(fwd, bwd, torch.from_numpy(of), torch.from_numpy(ob)).to(device)

    def put(self, key: str, pair: FlowPair) -> Path:
        """Store ``pair`` atomically; returns the entry's path (there once ``flush`` returns, in background mode)."""
        p = self.path(key)
        if not self.background:
            _write_entry(p, *_host_arrays(pair, torch.float32))
            return p
        # Copied to the host here, in the caller's order of device work, as the float16 the file
        # keeps (half the copy). The workers see numpy arrays only: a torch op on their thread
        # would start a second OpenMP team beside the render's, spinning on the same cores (the
        # 2-core CPU's cold frames went 1.7x slower that way).
        host = _host_arrays(pair, torch.float16)
        if key in self._pending:
            self._settle(key)
        while len(self._pending) > self.writers:
            self._settle(next(iter(self._pending)))
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=self.writers, thread_name_prefix="retake-flow-cache")
        self._pending[key] = self._writer.submit(_write_entry, p, *host)
        return p

    def flush(self) -> None:
        """Wait for the writes ``put`` left to the worker. One that failed for want of space or
        permission is a warning, not an error: that pair is estimated again the next time."""
        while self._pending:
            self._settle(next(iter(self._pending)))

    def _settle(self, key: str) -> None:
        future = self._pending.pop(key)
        try:
            future.result()
        except OSError as error:
            warnings.warn(f"flow cache: could not write {self.path(key)}: {error}; that pair will be "
                          "estimated again next time", RuntimeWarning, stacklevel=3)


def _host_arrays(pair: FlowPair, dtype: torch.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(forward, backward, occlusion forward, occlusion backward) as new host arrays, the flows
    as ``dtype``. Either gives the same entry: torch's float16 (here) and numpy's (in
    ``_half_planes``) both round to nearest even, and a float16 goes through numpy unchanged."""
    return (pair.forward.detach().to("cpu", dtype, copy=True).numpy(),
            pair.backward.detach().to("cpu", dtype, copy=True).numpy(),
            pair.occlusion_forward.detach().to("cpu", torch.bool, copy=True).numpy(),
            pair.occlusion_backward.detach().to("cpu", torch.bool, copy=True).numpy())


def _write_entry(p: Path, forward: np.ndarray, backward: np.ndarray, occlusion_forward: np.ndarray,
                 occlusion_backward: np.ndarray) -> None:
    """The entry file of a pair (``_host_arrays``) at ``p``, written atomically (temporary file,
    fsync, rename). numpy only: it runs on the cache's writer threads."""
    p.parent.mkdir(parents=True, exist_ok=True)
    of, ob = occlusion_forward.astype(bool), occlusion_backward.astype(bool)
    arrays: dict[str, np.ndarray] = {}
    for name, flow in (("forward", forward), ("backward", backward)):
        arrays.update(_half_planes(name, flow))
    arrays.update({
        "occlusion_forward": np.packbits(of.ravel()),
        "occlusion_backward": np.packbits(ob.ravel()),
        "mask_shape": np.array(of.shape, dtype=np.int64),
    })
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            # An ordinary .npz that np.load reads. Only the flows' high bytes are deflated
            # (level 1): the low bytes are mantissa noise that deflate cannot shrink, and
            # np.savez_compressed deflating everything at level 6 took 0.13 s a 960x540
            # pair, a tenth of a cold frame on two cores; this takes 0.03 s with the fsync,
            # and the entry is 14 % smaller.
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
                for name, array in arrays.items():
                    member = zipfile.ZipInfo(f"{name}.npy") if name.endswith("_low") else f"{name}.npy"
                    with zf.open(member, "w", force_zip64=True) as out:
                        np.lib.format.write_array(out, array, allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def cached_flow_pair(cache: FlowCache, a: torch.Tensor, b: torch.Tensor, method: str = "torch", *,
                     digest_a: str | None = None, digest_b: str | None = None,
                     alpha: float = 0.01, beta: float = 0.5, **params) -> FlowPair:
    """flow_pair(a, b, method, ...) through the cache.

    a, b: (B, 3, H, W) float32 linear ACEScg at the resolution the flow is wanted at.
    digest_a / digest_b: content hashes supplied by the caller (e.g. of the plate's source
    frames plus the resize used); default: frame_digest() of the tensors themselves.
    The key also covers the method, every parameter (defaults filled in) and the version.
    Returns the pair on a's device.
    """
    full = dict(TORCH_FLOW_DEFAULTS) if method == "torch" else {"preset": "medium"}
    full.update(params)
    full.update({"alpha": alpha, "beta": beta})
    key = flow_key(digest_a or frame_digest(a), digest_b or frame_digest(b), method, full)
    hit = cache.get(key, device=a.device)
    if hit is not None:
        return hit
    pair = flow_pair(a, b, method, alpha=alpha, beta=beta, **params)
    cache.put(key, pair)
    return pair
