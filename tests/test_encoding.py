"""The engine's perceptual encoding is OCIO's ACEScct, and decodes exactly."""
from __future__ import annotations

import numpy as np
import torch

from engine.colour import Colour
from engine.encoding import acescct_decode, acescct_encode


def test_encode_matches_opencolorio_acescct() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.uniform(-0.05, 0.02, 3000), rng.uniform(0, 1, 3000),
                             np.exp(rng.uniform(-8, 9, 3000))]).astype(np.float32)
    pixels = values.reshape(-1, 1, 3)
    ocio = Colour().convert(pixels, "ACEScg", "ACEScct")
    ours = acescct_encode(torch.from_numpy(pixels)).numpy()
    np.testing.assert_allclose(ours, ocio, rtol=1e-5, atol=2e-6)


def test_decode_inverts_encode_over_the_hdr_range_and_below_zero() -> None:
    x = torch.cat([torch.linspace(-0.1, 0.02, 500), torch.logspace(-6, 4.5, 2000)])
    np.testing.assert_allclose(acescct_decode(acescct_encode(x)).numpy(), x.numpy(), rtol=2e-5, atol=1e-7)
    assert float(acescct_encode(torch.tensor(0.18))) == np.float32((np.log2(0.18) + 9.72) / 17.52)


def test_non_finite_values_are_neutralised() -> None:
    out = acescct_encode(torch.tensor([float("nan"), float("inf"), -float("inf")]))
    assert torch.isfinite(out).all()
