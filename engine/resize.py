"""Output resolution: draft (360 lines), 1080p, source or explicit, on the engine's device."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from engine.errors import InputError

DRAFT_LINES = 360


def target_size(resolution: str, width: int, height: int) -> tuple[int, int]:
    """(width, height) for an output ``resolution`` of a ``width`` x ``height`` source.

    ``draft`` and ``1080p`` keep the source's aspect (and so its pixel aspect) and
    round the width to an even number, which movie encoders need.
    """
    if resolution == "source":
        return width, height
    if resolution in ("draft", "1080p"):
        lines = DRAFT_LINES if resolution == "draft" else 1080
        new_width = max(2, int(round(width * lines / height / 2.0)) * 2)
        return new_width, lines
    try:
        w_text, h_text = resolution.lower().split("x")
        return int(w_text), int(h_text)
    except ValueError:
        raise InputError(f"unknown output resolution {resolution!r}",
                         hint='use "draft", "1080p", "source" or "WIDTHxHEIGHT"') from None


def resize(image: np.ndarray, width: int, height: int, device: torch.device) -> np.ndarray:
    """Resample ``image`` (H, W, C) float32, any colour space, to (height, width, C).

    Antialiased bilinear on downscale so a draft does not alias; values are not
    clamped, so HDR highlights keep their energy (approximately) when averaged.
    """
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    tensor = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None]
    out = F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False,
                        antialias=width < w or height < h)
    return out[0].permute(1, 2, 0).contiguous().cpu().numpy()
