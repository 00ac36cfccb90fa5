"""The flow solve replayed from a CUDA graph (engine.cuda_graphs) against the eager solve.

Needs a cuda device: on a machine without one every test here skips with that reason
(the CPU side, the opt-in and the solve's freedom from host synchronisation, is tested in
tests/test_flow.py). ``bench/device_kit.sh run`` runs this file on a lent GPU.
"""
from __future__ import annotations

import pytest
import torch

from engine.cuda_graphs import GraphedFunction
from engine.flow import estimate_flow, flow_pair
from tests.test_flow import affine_pair, square_scene

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a cuda device (none on this machine)")


def _on_cuda(*tensors: torch.Tensor) -> list[torch.Tensor]:
    return [t.to("cuda") for t in tensors]


def test_a_replayed_flow_pair_is_the_eager_one(monkeypatch):
    a, b, _ = affine_pair(96, 128, [[1, 0], [0, 1]], (3.4, -1.7), seed=3)
    a, b = _on_cuda(a, b)
    monkeypatch.delenv("RETAKE_CUDA_GRAPHS", raising=False)
    eager = flow_pair(a, b)
    monkeypatch.setenv("RETAKE_CUDA_GRAPHS", "1")
    first = flow_pair(a, b)      # captured
    again = flow_pair(a, b)      # replayed
    for pair in (first, again):
        assert torch.allclose(pair.forward, eager.forward, atol=1e-5)
        assert torch.allclose(pair.backward, eager.backward, atol=1e-5)
        assert torch.equal(pair.occlusion_forward, eager.occlusion_forward)


def test_a_replay_solves_the_new_inputs_and_hands_out_its_own_copy(monkeypatch):
    monkeypatch.setenv("RETAKE_CUDA_GRAPHS", "1")
    a1, b1, _ = affine_pair(96, 128, [[1, 0], [0, 1]], (1.5, 0.5), seed=1)
    a2, b2, _ = square_scene(96, 128, shift=4)
    a1, b1, a2, b2 = _on_cuda(a1, b1, a2, b2)
    one = flow_pair(a1, b1).forward
    kept = one.clone()
    two = flow_pair(a2, b2).forward            # same shape: the same graph, replayed on new frames
    assert torch.allclose(two, estimate_flow(a2, b2), atol=1e-5)
    assert not torch.allclose(one, two, atol=0.1)
    assert torch.equal(one, kept)              # the second replay did not write into the first result


def test_graphs_are_kept_per_signature_and_the_oldest_given_up():
    graphed = GraphedFunction(lambda t, scale: t * scale + 1.0, keep=2)
    for n in (3, 4, 5):
        x = torch.arange(float(n), device="cuda")
        assert torch.equal(graphed(x, static=(("scale", 2.0),)), x * 2.0 + 1.0)
    assert len(graphed._graphs) == 2
    y = torch.ones(5, device="cuda")
    assert torch.equal(graphed(y, static=(("scale", 3.0),)), y * 3.0 + 1.0)   # other arguments: another graph
