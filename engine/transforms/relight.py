"""``relight``: a new light on the take, keyed like a grade.

Each keyframe's ``light`` (direction, intensity, colour, softness) is interpolated across
the plate (the monotone cubic of ``grade``, or linear/constant) and added to every frame
on a shading estimate of that frame. What the estimate is, plainly:

* **illumination**: the frame's luminance, smoothed at a large scale in log (Retinex):
  how much light falls where, as if the surfaces were all one grey;
* **albedo**: the frame divided by that illumination: the surfaces' own colour;
* **normals**: a shape-from-shading guess, not geometry: the log luminance above the
  scale of fine texture (1.5 % of the frame) is taken as a height field (brighter =
  nearer the light that lit it), and its slopes tilt the normals, scaled so a typical
  slope is about 30 degrees. Broad changes of albedo are read as form.

The added light is Lambertian on those normals, wrapped by ``softness`` (a soft source
reaches round the form, a hard key falls off at the terminator), times the albedo and
the frame's mean illumination, so intensity 1 adds about as much light as the frame
already has where a surface faces it. It is added, never clipped: highlights stay HDR
(and a light of intensity 0 gives the frame back bit for bit). Relighting *by example*
(the artist relights keyframes, the engine carries it) is ``propagate``.

Frames in and out: (H, W, C) float32 scene-linear ACEScg; alpha untouched.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from engine.errors import JobError
from engine.job import Job, Light
from engine.synth import gaussian_blur
from engine.transforms.grade import hermite, monotone_tangents

__all__ = ["RelightTransform", "shading_estimate", "light_vector", "add_light", "LUMA"]

LUMA = (0.2722287, 0.6740818, 0.0536895)   # AP1 (ACEScg) luminance weights
TILT = math.radians(30.0)                   # the tilt a typical slope of the height field gets


def light_vector(azimuth: float, elevation: float) -> tuple[float, float, float]:
    """The direction towards the light in image space: x right, y down, z towards the camera."""
    az, el = math.radians(azimuth), math.radians(elevation)
    return (math.sin(az) * math.cos(el), -math.sin(el), math.cos(az) * math.cos(el))


def shading_estimate(image: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(illumination (B, 1, H, W), albedo (B, 3, H, W), normals (B, 3, H, W) unit) of a
    (B, 3, H, W) linear ACEScg frame; ``side``: the frame's longer side (sets the scales)."""
    weights = torch.tensor(LUMA, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    luma = (image.clamp_min(0.0) * weights).sum(dim=1, keepdim=True)
    log_l = torch.log(luma + 1e-4)
    illumination = torch.exp(gaussian_blur(log_l, 0.02 * side))
    albedo = image / illumination.clamp_min(1e-4)
    # The form, not the surface's texture: fine texture (pores, weave, print) is below this scale.
    height = gaussian_blur(log_l, max(1.0, 0.015 * side))
    gx = (F.pad(height, (0, 1, 0, 0), mode="replicate")[..., 1:] - F.pad(height, (1, 0, 0, 0), mode="replicate")[..., :-1]) / 2
    gy = (F.pad(height, (0, 0, 0, 1), mode="replicate")[..., 1:, :] - F.pad(height, (0, 0, 1, 0), mode="replicate")[..., :-1, :]) / 2
    typical = torch.sqrt((gx ** 2 + gy ** 2).mean()).clamp_min(1e-6)
    scale = math.tan(TILT) / typical
    # Brighter = facing the original light, taken as nearer: the surface rises towards bright.
    normals = torch.cat([-gx * scale, -gy * scale, torch.ones_like(gx)], dim=1)
    return illumination, albedo, normals / normals.norm(dim=1, keepdim=True)


def add_light(image: torch.Tensor, light: Light, side: int) -> torch.Tensor:
    """(B, 3, H, W) linear ACEScg with ``light`` added (see the module's text)."""
    if light.intensity <= 0:
        return image
    illumination, albedo, normals = shading_estimate(image, side)
    lx, ly, lz = light_vector(light.azimuth, light.elevation)
    facing = normals[:, 0:1] * lx + normals[:, 1:2] * ly + normals[:, 2:3] * lz
    wrap = light.softness
    lambert = ((facing + wrap) / (1.0 + wrap)).clamp_min(0.0)
    if light.softness > 0:   # a larger source also softens the shading itself
        lambert = gaussian_blur(lambert, light.softness * 0.01 * side)
    colour = torch.tensor(light.colour, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    level = illumination.mean()
    return image + light.intensity * level * lambert * albedo * colour


class RelightTransform:
    """``apply`` works on (H, W, C) float32 ACEScg."""

    def __init__(self, keys: list[tuple[int, Light]], interpolation: str, device: str = "cpu") -> None:
        self.frames = np.array([f for f, _ in keys], dtype=np.float64)
        self.values = np.array([[l.azimuth, l.elevation, l.intensity, *l.colour, l.softness] for _, l in keys],
                               dtype=np.float64)
        self.tangents = monotone_tangents(self.frames, self.values)
        self.interpolation = interpolation
        self.device = torch.device(device)

    @classmethod
    def from_job(cls, job: Job, device: str = "cpu") -> "RelightTransform":
        keys = [(k.frame, k.light) for k in job.keyframes if k.light is not None]
        if not keys:
            raise JobError("relight needs at least one keyframe with a light", path="$.keyframes",
                           hint='add {"frame": N, "light": {"azimuth": 60, "elevation": 30, "intensity": 1}}')
        return cls(keys, job.transform.params.get("interpolation", "smooth"), device)  # type: ignore[arg-type]

    def light_at(self, frame: int) -> Light:
        v = hermite(self.frames, self.values, self.tangents, float(frame), self.interpolation)
        return Light(azimuth=float(v[0]), elevation=float(v[1]), intensity=max(0.0, float(v[2])),
                     colour=(max(0.0, float(v[3])), max(0.0, float(v[4])), max(0.0, float(v[5]))),
                     softness=min(1.0, max(0.0, float(v[6]))))

    def apply(self, frame: int, image: np.ndarray) -> np.ndarray:
        light = self.light_at(frame)
        if light.intensity <= 0:
            return image
        rgb = torch.from_numpy(np.ascontiguousarray(image[..., :3], dtype=np.float32)).to(self.device)
        with torch.no_grad():
            lit = add_light(rgb.permute(2, 0, 1)[None], light, max(image.shape[:2]))
        out = np.array(image, dtype=np.float32, copy=True)
        out[..., :3] = lit[0].permute(1, 2, 0).cpu().numpy()
        return out
