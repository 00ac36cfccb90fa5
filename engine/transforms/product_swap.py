"""``product_swap``: a product's surface in the take replaced by a new one.

The artist marks the surface (a label, a package front, a screen, a sign) as a quad on
the ``reference`` frame and gives the new product ``image`` (its alpha, when it has
one, is its shape). On every frame:

1. **where**: the planar tracker (``engine.analysis.planar``, tied to the reference
   frame, so it does not drift) gives the quad's corners; the image is mapped onto
   them by the homography of its rectangle to the corners, with the take's motion
   blur (``shutter``, sampled along the corners' path between neighbouring frames);
2. **light** (``match_light`` on): the new product is lit like the surface it replaces.
   Its level is set once so that its mean luminance equals the old surface's on the
   reference frame; then, per pixel and channel, it follows how the light on the
   surface has changed since the reference frame: the ratio of the blurred current
   frame to the blurred reference frame carried onto it (the reference's own
   texture cancels, so a shadow crossing the surface, a flicker or a colour shift
   shows, the old label does not);
3. **what is in front**: where the current frame no longer looks like the reference
   surface carried onto it, beyond the surface's overall change of light (a hand, a
   passer-by), the plate is kept: the new product stays behind what passes in front
   of the old one. A hard, dark shadow can be taken for something in front.

What is approximated: the light is a smooth gain per channel (no new specular
highlights, no re-shading of a curved surface); the surface is planar.

Frames in and out: (H, W, C) float32 scene-linear ACEScg; alpha is left untouched.
"""
from __future__ import annotations

import cv2
import numpy as np

from engine.encoding import acescct_encode
from engine.job import Job
from engine.transforms import TransformContext
from engine.transforms.homography import analysis_frames, blurred_warp, check_frame, read_picture, warp_image

__all__ = ["ProductSwapTransform", "LUMA"]

LUMA = np.array([0.2722287, 0.6740818, 0.0536895], dtype=np.float32)  # AP1 (ACEScg) luminance weights
OCCLUSION_TAU = 0.025  # ACEScct difference (beyond the light's) from which the surface counts as covered


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    return cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32)).astype(np.float64)


class ProductSwapTransform:
    """``apply`` works on (H, W, C) float32 ACEScg."""

    def __init__(self, product: np.ndarray, alpha: np.ndarray | None, corners: dict[int, np.ndarray],
                 reference: int, reference_source: np.ndarray, size: tuple[int, int], shutter: float,
                 match_light: bool) -> None:
        self.product = product
        self.alpha = np.ones(product.shape[:2], np.float32) if alpha is None else np.clip(alpha, 0.0, 1.0)
        self.corners = corners
        self.reference = reference
        self.size = size
        self.shutter = shutter
        self.match_light = match_light
        # The product with its shape, as warped on every frame: made once.
        self.rgba = np.ascontiguousarray(np.concatenate([product, self.alpha[..., None]], axis=-1), dtype=np.float32)
        ph, pw = product.shape[:2]
        self.rect = np.array([[0.0, 0.0], [pw, 0.0], [pw, ph], [0.0, ph]])
        self.reference_source = np.ascontiguousarray(reference_source[..., :3], dtype=np.float32)
        quad = corners[reference]
        self.sigma = max(1.5, 0.06 * float(np.sqrt(abs(cv2.contourArea(quad.astype(np.float32))))))
        self.level = 1.0
        if match_light:
            _, cover = warp_image(self.alpha[..., None], _homography(self.rect, quad), size)
            inside = cover > 0.5
            old = float((self.reference_source @ LUMA)[inside].mean()) if inside.any() else 0.0
            new = float(((self.product @ LUMA) * self.alpha).sum() / max(self.alpha.sum(), 1e-6))
            self.level = old / new if new > 1e-6 and old > 0 else 1.0

    @classmethod
    def from_job(cls, job: Job, context: TransformContext) -> "ProductSwapTransform":
        from engine.analysis.planar import track_quad

        params = job.transform.params
        reference = int(params["reference"])
        check_frame("reference", reference, context)
        product, alpha = read_picture(params["image"], context.colour, "image")
        width, height = context.size
        plate_w = context.plate.width if context.plate is not None else width
        quad = np.asarray(params["quad"], dtype=np.float64).reshape(4, 2) * (width / plate_w)  # plate -> output px
        frames, scale = analysis_frames(context)
        track = track_quad(frames, reference, quad * scale)
        corners = {f: c / scale for f, c in track.corners.items()}
        return cls(product, alpha, corners, reference, context.source(reference), context.size,
                   float(params["shutter"]), params["match_light"] == "on")

    def _corners_at(self, frame: int, t: float) -> np.ndarray:
        current = self.corners[frame]
        other = self.corners.get(frame + 1 if t >= 0 else frame - 1)
        if other is None:
            other = 2 * current - self.corners.get(frame - 1 if t >= 0 else frame + 1, current)
        return current + abs(t) * (other - current)

    def apply(self, frame: int, image: np.ndarray) -> np.ndarray:
        source = np.ascontiguousarray(image[..., :3], dtype=np.float32)
        picture, coverage = blurred_warp(self.rgba, lambda t: _homography(self.rect, self._corners_at(frame, t)),
                                         self.size, self.shutter)
        matte = coverage * np.clip(picture[..., 3], 0.0, 1.0)
        product = picture[..., :3] * self.level
        # The reference frame's surface, carried onto this frame by the track.
        to_here = _homography(self.corners[self.reference], self.corners[frame])
        was, _ = warp_image(self.reference_source, to_here, self.size)
        if self.match_light:
            # Only the surface's own pixels: beyond its edge the reference frame carried by the
            # plane's homography is not what is there now.
            surface = (coverage > 0.99).astype(np.float32)[..., None]
            blur = lambda x: cv2.GaussianBlur(x, (0, 0), self.sigma)  # noqa: E731 - a local shorthand
            gain = blur(source * surface) / np.maximum(blur(was * surface), 1e-6)
            product = product * np.clip(np.nan_to_num(gain, nan=1.0), 0.05, 20.0)
        # The surface's overall change of light is a gain per channel (the median ratio over the
        # quad); what departs from the reference surface under that light is something in front.
        on_surface = (matte > 0.5) & (was.min(axis=-1) > 1e-3)
        light = (np.median(source[on_surface] / was[on_surface], axis=0) if on_surface.sum() > 16
                 else np.ones(3, np.float32))
        difference = acescct_encode_np(source) - acescct_encode_np(np.ascontiguousarray(was * light, dtype=np.float32))
        # Blurred before the absolute value: resampling differences at fine texture are signed
        # and cancel, what stands in front does not.
        changed = np.abs(cv2.GaussianBlur(np.ascontiguousarray(difference), (0, 0), 1.5)).mean(axis=-1)
        covered = np.clip((changed - OCCLUSION_TAU) / (0.5 * OCCLUSION_TAU), 0.0, 1.0)
        covered = cv2.dilate(covered, np.ones((3, 3), np.uint8))   # the occluder's own soft edge
        keep = matte * (1.0 - covered)
        out = np.array(image, dtype=np.float32, copy=True)
        out[..., :3] = source * (1.0 - keep[..., None]) + product * keep[..., None]
        return out


def acescct_encode_np(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 ACEScg -> ACEScct code values (``engine.encoding``, the same curve)."""
    import torch

    return acescct_encode(torch.from_numpy(np.ascontiguousarray(image))).numpy()
