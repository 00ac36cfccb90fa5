"""``relight``: a new light on the take, keyed like a grade.

Each keyframe's ``light`` (direction, intensity, colour, softness) is interpolated across
the plate (the monotone cubic of ``grade``, or linear/constant) and added to every frame
on a shading estimate of that frame. What the estimate is, plainly:

* **illumination**: the frame's luminance, smoothed at a large scale in log (Retinex):
  how much light falls where, as if the surfaces were all one grey;
* **albedo**: the frame divided by that illumination: the surfaces' own colour;
* **normals**: a guess, not geometry, made of two slope fields added together:

  - the *image's* (shape from shading): the log luminance above the scale of fine texture
    (1.5 % of the frame) is taken as a height field (brighter = nearer the light that lit
    it), and its slopes tilt the normals, scaled so a typical slope is about 30 degrees.
    Broad changes of albedo are read as form. Alone (``form`` ``image``), this is all;
  - the *people's* (``form`` ``people``, the default): each person's silhouette (the soft
    person mask of ``engine.analysis.masks``, on the frame reduced to the analysis size)
    inflated into a rounded form: the height at a point is that of a circle through the
    silhouette's edge, from its distance to the edge (smoothed) and the person's half-width
    at their widest, ``sqrt(d (2R - d))``: steep at the edge, level at the widest. So the
    normals turn outwards towards the silhouette and face the camera in the middle, as on
    a rounded body, whatever the shading says; the image's slopes stay on top as the
    detail. It is a blob the shape of the outline, not a body: no nose, no limbs in front
    of the torso, a flat person is as round as a thick one. The segmentation model assumes
    someone is there: on a shot with no people it may call the most salient thing (the
    ground, a cup) a person, which then gets the rounded form too; ``form`` ``image`` turns
    it off. Where the mask is 0 the normals are the image's alone, bit for bit.

The added light is Lambertian on those normals, wrapped by ``softness`` (a soft source
reaches round the form, a hard key falls off at the terminator; its blur reaches a little
past a silhouette), times the albedo and the frame's mean illumination, so intensity 1
adds about as much light as the frame already has where a surface faces it. It is added,
never clipped: highlights stay HDR (and a light of intensity 0 gives the frame back bit for
bit). Relighting *by example* (the artist relights keyframes, the engine carries it) is
``propagate``.

Frames in and out: (H, W, C) float32 scene-linear ACEScg; alpha untouched. Masks:
(h, w) float32 0..1 (1 = person), at any size (scaled to the frame's).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from engine.colour import Colour
from engine.errors import JobError
from engine.job import Job, Light
from engine.filters import gaussian_blur
from engine.transforms.grade import hermite, monotone_tangents
# Masks are made on frames at most this long, as the trackers' (the model itself sees 256 px).
from engine.transforms.homography import ANALYSIS_SIDE as MASK_SIDE

__all__ = ["RelightTransform", "PersonMasks", "shading_estimate", "inflate", "form_slopes", "mask_normals",
           "light_vector", "add_light", "LUMA"]

LUMA = (0.2722287, 0.6740818, 0.0536895)   # AP1 (ACEScg) luminance weights
TILT = math.radians(30.0)                   # the tilt a typical slope of the height field gets
# The steepest a person's form gets at the silhouette (a circle's edge is vertical; the soft
# mask's edge is not where the body's is to the pixel, so the last degrees would be a guess).
EDGE_TILT = math.radians(80.0)
ROUNDING = 0.1   # the distance to the edge is smoothed over this share of the widest person's half-width


def light_vector(azimuth: float, elevation: float) -> tuple[float, float, float]:
    """The direction towards the light in image space: x right, y down, z towards the camera."""
    az, el = math.radians(azimuth), math.radians(elevation)
    return (math.sin(az) * math.cos(el), -math.sin(el), math.cos(az) * math.cos(el))


def inflate(mask: np.ndarray) -> np.ndarray:
    """(h, w) float32 0..1 soft person mask -> (h, w) float32 height field in pixels (of the
    mask's size, towards the camera): each person's silhouette inflated into a rounded form.

    ``d``: the distance to the silhouette's edge (where the mask crosses 0.5), smoothed so the
    ridge along the middle of an arm or a torso is round, not a crease; ``R``: that person's
    half-width at their widest (the largest ``d`` of their connected part of the mask, so a far
    person is as round as a near one). The height ``sqrt(d (2R - d))`` is a circle's through the
    edge: vertical there, level at ``d = R``. The frame's border is not an edge (the body goes
    on past it). It is not 0 just outside the silhouette (the smoothing spills): ``form_slopes``
    weights it by the mask.
    """
    inside = (mask >= 0.5).astype(np.uint8)
    if not inside.any() or inside.all():   # nobody, or no edge to give a form
        return np.zeros(mask.shape, dtype=np.float32)
    distance = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    distance = np.where(inside > 0, distance - 0.5, 0.0).astype(np.float32)   # to the edge between pixels
    # For every pixel, the person (connected part of the mask) nearest to it: its own inside it.
    _, nearest = cv2.distanceTransformWithLabels(1 - inside, cv2.DIST_L2, cv2.DIST_MASK_5,
                                                 labelType=cv2.DIST_LABEL_CCOMP)
    widest = np.zeros(int(nearest.max()) + 1, dtype=np.float32)
    np.maximum.at(widest, nearest[inside > 0], distance[inside > 0])
    sigma = max(1.0, ROUNDING * float(widest.max()))
    smoothed = cv2.GaussianBlur(distance, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    # Smoothed too: between two people the half-width changes over a distance, not at a line.
    radius = np.maximum(cv2.GaussianBlur(widest[nearest], (0, 0), sigma, borderType=cv2.BORDER_REPLICATE), 0.5)
    d = np.clip(smoothed, 0.0, radius)
    return np.sqrt(d * (2.0 * radius - d)).astype(np.float32)


def _slopes(height: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences (d/dx, d/dy) of a (B, 1, H, W) field, replicated at the border."""
    gx = (F.pad(height, (0, 1, 0, 0), mode="replicate")[..., 1:] - F.pad(height, (1, 0, 0, 0), mode="replicate")[..., :-1]) / 2
    gy = (F.pad(height, (0, 0, 0, 1), mode="replicate")[..., 1:, :] - F.pad(height, (0, 0, 1, 0), mode="replicate")[..., :-1, :]) / 2
    return gx, gy


def form_slopes(mask: torch.Tensor) -> torch.Tensor:
    """(B, 1, h, w) soft person mask 0..1 -> (B, 2, h, w) the people's form as the normals'
    (x, y) slopes, ``-grad`` of ``inflate``'s height (pointing away from the person at the
    silhouette), no steeper than ``EDGE_TILT`` and weighted by the mask: exactly 0 where it is 0.

    Slopes are dimensionless (pixels over pixels), so a mask made at a reduced size gives the
    frame's slopes once scaled up to it.
    """
    heights = np.stack([inflate(m) for m in mask[:, 0].detach().cpu().numpy().astype(np.float32)])
    height = torch.from_numpy(heights)[:, None].to(device=mask.device, dtype=mask.dtype)
    gx, gy = _slopes(height)
    steepness = torch.sqrt(gx ** 2 + gy ** 2)
    limit = steepness.clamp_min(math.tan(EDGE_TILT)) / math.tan(EDGE_TILT)
    return torch.cat([-gx, -gy], dim=1) / limit * mask


def mask_normals(mask: torch.Tensor) -> torch.Tensor:
    """(B, 1, h, w) soft person mask -> (B, 3, h, w) unit normals of the people's inflated form
    alone (x right, y down, z towards the camera; (0, 0, 1) where the mask is 0)."""
    slopes = form_slopes(mask)
    normals = torch.cat([slopes, torch.ones_like(slopes[:, :1])], dim=1)
    return normals / normals.norm(dim=1, keepdim=True)


def shading_estimate(image: torch.Tensor, side: int, person: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(illumination (B, 1, H, W), albedo (B, 3, H, W), normals (B, 3, H, W) unit) of a
    (B, 3, H, W) linear ACEScg frame; ``side``: the frame's longer side (sets the scales).

    ``person``: (B, 1, h, w) soft person mask 0..1 at any size (bilinear to (H, W)), or None:
    its people's inflated form is added to the image's slopes (see the module's text).
    """
    weights = torch.tensor(LUMA, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    luma = (image.clamp_min(0.0) * weights).sum(dim=1, keepdim=True)
    log_l = torch.log(luma + 1e-4)
    illumination = torch.exp(gaussian_blur(log_l, 0.02 * side))
    albedo = image / illumination.clamp_min(1e-4)
    # The form, not the surface's texture: fine texture (pores, weave, print) is below this scale.
    height = gaussian_blur(log_l, max(1.0, 0.015 * side))
    gx, gy = _slopes(height)
    typical = torch.sqrt((gx ** 2 + gy ** 2).mean()).clamp_min(1e-6)
    scale = math.tan(TILT) / typical
    # Brighter = facing the original light, taken as nearer: the surface rises towards bright.
    normals = torch.cat([-gx * scale, -gy * scale, torch.ones_like(gx)], dim=1)
    normals = normals / normals.norm(dim=1, keepdim=True)
    if person is not None:
        person = person.to(device=image.device, dtype=image.dtype)
        form = form_slopes(person)
        if person.shape[-2:] != image.shape[-2:]:
            size = tuple(image.shape[-2:])
            form = F.interpolate(form, size=size, mode="bilinear", align_corners=False)
            person = F.interpolate(person, size=size, mode="bilinear", align_corners=False)
        both = torch.cat([-gx * scale + form[:, 0:1], -gy * scale + form[:, 1:2], torch.ones_like(gx)], dim=1)
        both = both / both.norm(dim=1, keepdim=True)
        # Outside the people the image's normals as they were, not recomputed: the same bits.
        normals = torch.where(person > 0, both, normals)
    return illumination, albedo, normals


def add_light(image: torch.Tensor, light: Light, side: int, person: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 3, H, W) linear ACEScg with ``light`` added (see the module's text); ``person`` as
    ``shading_estimate``'s."""
    if light.intensity <= 0:
        return image
    illumination, albedo, normals = shading_estimate(image, side, person)
    lx, ly, lz = light_vector(light.azimuth, light.elevation)
    facing = normals[:, 0:1] * lx + normals[:, 1:2] * ly + normals[:, 2:3] * lz
    wrap = light.softness
    lambert = ((facing + wrap) / (1.0 + wrap)).clamp_min(0.0)
    if light.softness > 0:   # a larger source also softens the shading itself
        lambert = gaussian_blur(lambert, light.softness * 0.01 * side)
    colour = torch.tensor(light.colour, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    level = illumination.mean()
    return image + light.intensity * level * lambert * albedo * colour


class PersonMasks:
    """``mask(image)``: the (h, w) float32 0..1 soft person mask of an (H, W, C) ACEScg frame,
    made on the frame reduced to at most ``MASK_SIDE`` (the model sees 256 px; the form is
    coarse), through the display transform the models expect (``engine.analysis.frames``)."""

    def __init__(self, colour: Colour, segmenter: object | None = None) -> None:
        if segmenter is None:
            from engine.analysis.masks import PersonSegmenter
            from engine.analysis.models import model_path

            # Checked here: a missing model is said before the first frame, not on it.
            for name in ("selfie_segmentation_landscape", "selfie_segmentation"):
                model_path(name)
            segmenter = PersonSegmenter()
        self.colour = colour
        self.segmenter = segmenter

    def mask(self, image: np.ndarray) -> np.ndarray:
        from engine.analysis.frames import display_rgb8

        height, width = image.shape[:2]
        scale = min(1.0, MASK_SIDE / max(height, width))
        rgb = np.ascontiguousarray(image[..., :3], dtype=np.float32)
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        # The frame's own mask, not one steadied with the previous frame: a frame's light must not
        # depend on the order the frames are rendered in (a farm chunk starts anywhere).
        probability = self.segmenter.raw_mask(display_rgb8(self.colour, rgb))  # type: ignore[attr-defined]
        # A probability is not a matte (as ``environment``'s): solid where the model is sure,
        # clear where it is sure of the opposite, soft only across its uncertain edge.
        return np.clip((probability - 0.25) / 0.5, 0.0, 1.0).astype(np.float32)


class RelightTransform:
    """``apply`` works on (H, W, C) float32 ACEScg. ``people``: a frame's soft person mask
    (``PersonMasks.mask``) for the people's form, or None for the image's alone."""

    def __init__(self, keys: list[tuple[int, Light]], interpolation: str, device: str = "cpu",
                 people: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self.frames = np.array([f for f, _ in keys], dtype=np.float64)
        self.values = np.array([[l.azimuth, l.elevation, l.intensity, *l.colour, l.softness] for _, l in keys],
                               dtype=np.float64)
        self.tangents = monotone_tangents(self.frames, self.values)
        self.interpolation = interpolation
        self.device = torch.device(device)
        self.people = people

    @classmethod
    def from_job(cls, job: Job, colour: Colour, device: str = "cpu") -> "RelightTransform":
        keys = [(k.frame, k.light) for k in job.keyframes if k.light is not None]
        if not keys:
            raise JobError("relight needs at least one keyframe with a light", path="$.keyframes",
                           hint='add {"frame": N, "light": {"azimuth": 60, "elevation": 30, "intensity": 1}}')
        people = None
        if job.transform.params.get("form", "image") == "people":
            from engine.analysis.models import ModelMissingError

            try:
                people = PersonMasks(colour).mask
            except ModelMissingError as error:
                fix = 'or set "transform.form": "image" (the image\'s shading alone)'
                raise ModelMissingError(error.message, path=error.path,
                                        hint=f"{error.hint}; {fix}" if error.hint else fix) from error
        return cls(keys, job.transform.params.get("interpolation", "smooth"), device, people)  # type: ignore[arg-type]

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
        person = None
        if self.people is not None:
            person = torch.from_numpy(self.people(image)).to(self.device)[None, None]
        with torch.no_grad():
            lit = add_light(rgb.permute(2, 0, 1)[None], light, max(image.shape[:2]), person)
        out = np.array(image, dtype=np.float32, copy=True)
        out[..., :3] = lit[0].permute(1, 2, 0).cpu().numpy()
        return out
