"""engine.filters: the separable Gaussian blur shared by the flow and the synthesis (CPU)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

cv2 = pytest.importorskip("cv2")

from engine.filters import gaussian_blur, gaussian_kernel  # noqa: E402


@pytest.mark.parametrize("sigma, channels, size", [(0.7, 1, (37, 53)), (1.0, 3, (20, 31)), (2.4, 2, (64, 48)),
                                                    (6.0, 1, (9, 40))])
def test_slices_and_convolution_agree_and_match_opencv(sigma, channels, size):
    torch.manual_seed(1)
    x = torch.rand(2, channels, *size)
    by_slices = gaussian_blur(x, sigma, method="slices")
    by_conv = gaussian_blur(x, sigma, method="conv")
    assert by_slices.shape == x.shape and by_slices.dtype == x.dtype
    assert torch.allclose(by_slices, by_conv, atol=1e-6)
    assert torch.equal(gaussian_blur(x, sigma), by_slices)          # the CPU takes the slices
    # OpenCV's blur with the same taps and replicated edges, where the kernel fits the frame.
    k = gaussian_kernel(sigma).numpy().astype(np.float64)
    if len(k) <= min(size):
        ref = cv2.sepFilter2D(x[0, 0].numpy(), cv2.CV_32F, k, k, borderType=cv2.BORDER_REPLICATE)
        assert np.allclose(by_slices[0, 0].numpy(), ref, atol=1e-5)


def test_blur_keeps_a_constant_and_spreads_a_point_by_sigma():
    flat = torch.full((1, 1, 16, 16), 3.5)
    assert torch.allclose(gaussian_blur(flat, 2.0), flat, atol=1e-5)
    point = torch.zeros(1, 1, 65, 65)
    point[..., 32, 32] = 1.0
    out = gaussian_blur(point, 3.0)[0, 0]
    assert abs(float(out.sum()) - 1.0) < 1e-5
    ys = torch.arange(65, dtype=torch.float32) - 32
    variance = float((out.sum(dim=1) * ys * ys).sum())
    assert abs(variance - 9.0) < 0.2
    assert gaussian_blur(point, 0.01) is point                       # too small to blur
    with pytest.raises(ValueError, match="method"):
        gaussian_blur(point, 1.0, method="fft")
