"""The perceptual working encoding of the engine: the ACEScct curve, per channel, in torch.

Comparisons (flow's data term, warping error, patch distances) and the transfer of an
edit from a keyframe to another frame happen in this encoding rather than in linear:
a highlight at 1000 is ~1.12 here while mid grey (0.18) is ~0.41, so highlights cannot
dominate a comparison, and a grade (a slope in linear) is an offset here, so an edit
carried as a difference stays right at every exposure and never turns a dark pixel
negative. Blending of finished estimates stays in linear.

This is the ACEScct transfer function only (the primaries stay AP1, ACEScg's), so
``encode`` equals OpenColorIO's ACEScg -> ACEScct conversion; ``tests/test_encoding.py``
checks it against OCIO. It exists as torch code because it runs on the device inside
the synthesis, per pixel, many times a frame; outputs never go through it.

Shapes: any float tensor; values scene-linear ACEScg in, ACEScct code values out.
"""
from __future__ import annotations

import math

import torch

__all__ = ["acescct_encode", "acescct_decode", "HALF_MAX"]

HALF_MAX = 65504.0
_CUT_LINEAR = 0.0078125                   # 2^-7: the toe's end in linear
_A, _B = 10.5402377416545, 0.0729055341958355
_CUT_CODE = _A * _CUT_LINEAR + _B         # 0.155251141552511
_CODE_MAX = (math.log2(HALF_MAX) + 9.72) / 17.52


def acescct_encode(x: torch.Tensor) -> torch.Tensor:
    """Scene-linear ACEScg -> ACEScct code values (same shape). NaN -> 0, +Inf -> half max."""
    x = torch.nan_to_num(x.float(), nan=0.0, posinf=HALF_MAX, neginf=-HALF_MAX)
    log_part = (torch.log2(x.clamp_min(_CUT_LINEAR)) + 9.72) / 17.52
    return torch.where(x <= _CUT_LINEAR, _A * x + _B, log_part)


def acescct_decode(y: torch.Tensor) -> torch.Tensor:
    """ACEScct code values -> scene-linear ACEScg (same shape); codes above half max clamp to it."""
    y = y.float()
    lin_part = (y - _B) / _A
    log_part = torch.exp2(y.clamp(max=_CODE_MAX) * 17.52 - 9.72)
    return torch.where(y <= _CUT_CODE, lin_part, log_part)
