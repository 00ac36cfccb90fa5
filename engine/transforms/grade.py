"""``grade``: a keyframed look that follows the artist's keyframes across the plate.

Each keyframe carries an ASC CDL (slope, offset, power, saturation) or an OCIO
look. Between keyframes the CDL parameters follow a monotone cubic curve: it
passes through every keyframe exactly, never overshoots (a saturation between
0.8 and 1.2 stays between them), moves smoothly through interior keyframes and
eases in and out at the first and last. Before the first and after the last
keyframe the grade holds. Where a look is involved its result cannot be
interpolated as numbers, so the two neighbouring results are blended with the
same easing.

The CDL is applied by OpenColorIO in the config's ``color_timing`` space
(ACEScct), where a colourist's slope/offset/power mean what they expect.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.colour import Colour
from engine.errors import JobError
from engine.job import CDL, Job


def _blend_cdl(cdl: CDL, strength: float) -> CDL:
    """Move ``cdl`` toward identity: strength 1 is the CDL, 0 is no grade."""
    if strength == 1.0:
        return cdl

    def mix(value: tuple[float, float, float], identity: float) -> tuple[float, float, float]:
        return tuple(identity + strength * (v - identity) for v in value)  # type: ignore[return-value]

    return CDL(mix(cdl.slope, 1.0), mix(cdl.offset, 0.0), mix(cdl.power, 1.0),
               1.0 + strength * (cdl.saturation - 1.0))


def _cdl_vector(cdl: CDL) -> np.ndarray:
    return np.array([*cdl.slope, *cdl.offset, *cdl.power, cdl.saturation], dtype=np.float64)


def _vector_cdl(v: np.ndarray) -> CDL:
    return CDL(tuple(v[0:3]), tuple(v[3:6]), tuple(v[6:9]), float(v[9]))  # type: ignore[arg-type]


def monotone_tangents(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Tangents for a monotone cubic Hermite curve through (x, y) (Fritsch–Carlson).

    ``x`` (K,) strictly increasing, ``y`` (K, P) values of P parameters. Interior
    tangents are the weighted harmonic mean of the neighbouring secants (0 where
    the curve turns), which prevents overshoot; end tangents are 0, so the curve
    eases in and out of the first and last keyframe.
    """
    k = len(x)
    tangents = np.zeros_like(y, dtype=np.float64)
    if k < 3:
        return tangents
    h = np.diff(x).astype(np.float64)[:, None]
    secants = np.diff(y, axis=0) / h
    for i in range(1, k - 1):
        d0, d1 = secants[i - 1], secants[i]
        w1 = 2 * h[i] + h[i - 1]
        w2 = h[i] + 2 * h[i - 1]
        same_sign = (d0 * d1) > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            harmonic = (w1 + w2) / (w1 / d0 + w2 / d1)
        tangents[i] = np.where(same_sign, harmonic, 0.0)
    return tangents


def hermite(x: np.ndarray, y: np.ndarray, tangents: np.ndarray, at: float, mode: str) -> np.ndarray:
    """Evaluate the keyed curve at ``at``: ``smooth`` (monotone cubic), ``linear`` or ``constant``."""
    if at <= x[0]:
        return y[0].copy()
    if at >= x[-1]:
        return y[-1].copy()
    i = int(np.searchsorted(x, at, side="right")) - 1
    x0, x1 = float(x[i]), float(x[i + 1])
    t = (at - x0) / (x1 - x0)
    if mode == "constant":
        return y[i].copy()
    if mode == "linear":
        return (1 - t) * y[i] + t * y[i + 1]
    h = x1 - x0
    h00 = 2 * t**3 - 3 * t**2 + 1
    h10 = t**3 - 2 * t**2 + t
    h01 = -2 * t**3 + 3 * t**2
    h11 = t**3 - t**2
    return h00 * y[i] + h10 * h * tangents[i] + h01 * y[i + 1] + h11 * h * tangents[i + 1]


@dataclass(frozen=True)
class _Key:
    frame: int
    cdl: CDL | None
    look: str | None
    strength: float


class GradeTransform:
    """Keyframed CDL / OCIO-look grade. ``apply`` works on (H, W, C) float32 ACEScg."""

    def __init__(self, keys: list[_Key], colour: Colour, interpolation: str = "smooth") -> None:
        self.keys = sorted(keys, key=lambda k: k.frame)
        self.colour = colour
        self.interpolation = interpolation
        self._frames = np.array([k.frame for k in self.keys], dtype=np.float64)
        self._all_cdl = all(k.cdl is not None for k in self.keys)
        if self._all_cdl:
            self._values = np.stack([_cdl_vector(k.cdl) for k in self.keys])  # type: ignore[arg-type]
        else:  # weights only: a scalar 0 -> 1 per segment, eased the same way
            self._values = np.zeros((len(self.keys), 1))
        self._tangents = monotone_tangents(self._frames, self._values)

    @classmethod
    def from_job(cls, job: Job, colour: Colour) -> "GradeTransform":
        keys: list[_Key] = []
        looks = {look.getName() for look in colour.config.getLooks()}
        for i, key in enumerate(job.keyframes):
            if key.grade is None and key.look is None:
                raise JobError(f"keyframe at frame {key.frame} has no grade or look",
                               path=f"$.keyframes[{i}]",
                               hint='give it "grade": {"slope": ..., "offset": ..., "power": ..., "saturation": ...} '
                                    '(an empty "grade": {} is a neutral key) or "look": "NAME"')
            if key.look is not None and key.look not in looks:
                raise JobError(f"look {key.look!r} is not in the OCIO config ({colour.config_name})",
                               path=f"$.keyframes[{i}].look",
                               hint="the config's looks: " + (", ".join(sorted(looks)) or "none"))
            cdl = _blend_cdl(key.grade, key.strength) if key.grade is not None else None
            keys.append(_Key(key.frame, cdl, key.look, key.strength))
        if not keys:
            raise JobError("the grade transformation needs at least one keyframe", path="$.keyframes",
                           hint='add {"frame": N, "grade": {...}} for each frame the artist has graded')
        return cls(keys, colour, job.transform.params.get("interpolation", "smooth"))

    def cdl_at(self, frame: int) -> CDL | None:
        """The interpolated CDL at ``frame`` when every keyframe is a CDL, else None."""
        if not self._all_cdl:
            return None
        return _vector_cdl(hermite(self._frames, self._values, self._tangents, float(frame), self.interpolation))

    def _apply_key(self, key: _Key, image: np.ndarray) -> np.ndarray:
        if key.cdl is not None:
            return self.colour.cdl(image, key.cdl.slope, key.cdl.offset, key.cdl.power, key.cdl.saturation)
        graded = self.colour.look(image, key.look)  # type: ignore[arg-type]
        if key.strength == 1.0:
            return graded
        out = image.copy()
        out[..., :3] = image[..., :3] + key.strength * (graded[..., :3] - image[..., :3])
        return out

    def apply(self, frame: int, image: np.ndarray) -> np.ndarray:
        """(H, W, C) float32 ACEScg -> graded (H, W, C) float32 ACEScg; alpha untouched."""
        cdl = self.cdl_at(frame)
        if cdl is not None:
            return self.colour.cdl(image, cdl.slope, cdl.offset, cdl.power, cdl.saturation)
        frames = self._frames
        if frame <= frames[0]:
            return self._apply_key(self.keys[0], image)
        if frame >= frames[-1]:
            return self._apply_key(self.keys[-1], image)
        i = int(np.searchsorted(frames, frame, side="right")) - 1
        if frames[i] == frame:
            return self._apply_key(self.keys[i], image)
        ramp = np.array([[0.0], [1.0]])
        weight = float(hermite(frames[i:i + 2], ramp, np.zeros_like(ramp), float(frame), self.interpolation)[0])
        a = self._apply_key(self.keys[i], image)
        b = self._apply_key(self.keys[i + 1], image)
        out = a.copy()
        out[..., :3] = (1.0 - weight) * a[..., :3] + weight * b[..., :3]
        return out
