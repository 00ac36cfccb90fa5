"""A tensor function replayed from a captured CUDA graph, one graph per input shape (opt-in).

On a GPU the engine's torch flow is bound by kernel launches, not by arithmetic: a
960x540 pair launches about 8,500 small kernels (``bench/device_check.py`` counts them),
each costing the host a few µs however little the GPU has to do with it. A CUDA graph
(``torch.cuda.graph``) records the launches once and replays them all with one call. It
needs a function of fixed shapes that never waits on the device (no ``.item()``, no
``nonzero``, no tensor made from Python data while it runs): the flow solve,
``engine.flow._estimate_normalised``, is such a function, and ``tests/test_flow.py`` keeps
it one.

Opt-in, with ``RETAKE_CUDA_GRAPHS=1``, until it has been measured on a GPU: none has been
lent to this project yet, so neither the gain nor the replay's equality with the eager
solve has been seen. ``bench/device_kit.sh run`` measures both on the first GPU
(``bench/device_check.py``'s graph table, ``tests/test_cuda_graphs.py``, and the
propagation benchmark with and without).
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Callable, Hashable

import torch

__all__ = ["GraphedFunction", "cuda_graphs_enabled"]


def cuda_graphs_enabled(device: torch.device | str) -> bool:
    """True on a cuda device when the environment opts in (``RETAKE_CUDA_GRAPHS=1``)."""
    return torch.device(device).type == "cuda" and os.environ.get("RETAKE_CUDA_GRAPHS", "") == "1"


_Entry = tuple[list[torch.Tensor], "torch.cuda.CUDAGraph", torch.Tensor]


class GraphedFunction:
    """``fn(*inputs, **dict(static))`` -> one tensor, replayed from a CUDA graph.

    A graph is captured the first time a signature is seen (every input's shape, dtype and
    device, and ``static``: fn's other arguments as a hashable tuple of (name, value)
    pairs), on copies of the inputs that later calls copy their inputs into. At most
    ``keep`` graphs are held, the least recently used given up first: each holds the
    memory of everything fn makes (its own pool), a few hundred MB for a 1080p flow pair.
    cuda inputs only.
    """

    def __init__(self, fn: Callable[..., torch.Tensor], keep: int = 2) -> None:
        self.fn = fn
        self.keep = keep
        self._graphs: OrderedDict[Hashable, _Entry] = OrderedDict()

    def __call__(self, *inputs: torch.Tensor, static: tuple[tuple[str, Hashable], ...] = ()) -> torch.Tensor:
        if not inputs or any(t.device.type != "cuda" for t in inputs):
            raise ValueError("GraphedFunction: inputs must be cuda tensors")
        key = (tuple((tuple(t.shape), t.dtype, t.device) for t in inputs), static)
        entry = self._graphs.get(key)
        if entry is None:
            entry = self._capture(inputs, static)
            self._graphs[key] = entry
            while len(self._graphs) > self.keep:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(key)
        buffers, graph, output = entry
        for buffer, t in zip(buffers, inputs):
            buffer.copy_(t)
        graph.replay()
        # The next replay writes into the same memory: the caller gets its own copy.
        return output.clone()

    def _capture(self, inputs: tuple[torch.Tensor, ...], static: tuple[tuple[str, Hashable], ...]) -> _Entry:
        kwargs = dict(static)
        buffers = [t.clone() for t in inputs]
        # As torch.cuda.graph's documentation has it: run once on a side stream first (the
        # allocator and lazily initialised kernels settle), then capture.
        side = torch.cuda.Stream(device=inputs[0].device)
        side.wait_stream(torch.cuda.current_stream(inputs[0].device))
        with torch.cuda.stream(side):
            self.fn(*buffers, **kwargs)
        torch.cuda.current_stream(inputs[0].device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            output = self.fn(*buffers, **kwargs)
        return buffers, graph, output
