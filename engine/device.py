"""The torch device the engine runs on: cuda, then mps, then cpu, chosen once."""
from __future__ import annotations

import torch

from engine.errors import InputError

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")


def choose_device(requested: str = "auto") -> torch.device:
    """``auto`` picks the best there is; naming one that is absent is an input error."""
    mps = getattr(torch.backends, "mps", None)
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": bool(mps and mps.is_available()),
        "cpu": True,
    }
    if requested == "auto":
        for name in ("cuda", "mps", "cpu"):
            if available[name]:
                return torch.device(name)
    if requested not in available:
        raise InputError(f"unknown device {requested!r}", hint="use one of " + ", ".join(DEVICE_CHOICES))
    if not available[requested]:
        present = ", ".join(n for n, ok in available.items() if ok)
        raise InputError(f"device {requested!r} is not available on this machine",
                         hint=f"use --device auto or one of: {present}")
    return torch.device(requested)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type
