"""Soft person masks, frame by frame, steady over time (for the ``bodies`` lock).

MediaPipe's selfie-segmentation model (the landscape variant, 256x144 input in
0..1, for wide frames; the square one, 256x256, for frames taller than 4:3)
gives a person probability per pixel; it is scaled back to the frame with
bilinear filtering. Temporal steadiness follows MediaPipe's segmentation
smoothing: where the new mask is confident it is used as it is (no lag when a
person moves), where it is uncertain (edges, hair) it is mixed with the
previous frame's mask, which removes flicker.

Images are (H, W, 3) uint8 sRGB (``frames.display_rgb8``); masks are (H, W)
float32 in 0..1 (1 = person), over the same pixels.
"""
from __future__ import annotations

import cv2
import numpy as np

from engine.analysis.models import load_model


class PersonSegmenter:
    """Person probability for frames of one plate; call ``mask`` with consecutive frames
    (``reset`` after a cut or a gap)."""

    def __init__(self, threads: int | None = None, previous_weight: float = 0.7) -> None:
        self._models: dict[str, object] = {}
        self.threads = threads
        self.previous_weight = previous_weight
        self._previous: np.ndarray | None = None

    def _model(self, name: str):
        if name not in self._models:
            self._models[name] = load_model(name, self.threads)
        return self._models[name]

    def reset(self) -> None:
        self._previous = None

    def raw_mask(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 sRGB -> (H, W) float32 person probability for this frame alone."""
        height, width = image.shape[:2]
        name = "selfie_segmentation_landscape" if width * 3 >= height * 4 else "selfie_segmentation"
        model = self._model(name)
        detail = model.get_input_details()[0]
        in_h, in_w = int(detail["shape"][1]), int(detail["shape"][2])
        small = cv2.resize(image, (in_w, in_h), interpolation=cv2.INTER_AREA).astype(np.float32)[None] / 255.0
        model.set_tensor(detail["index"], small)
        model.invoke()
        probability = model.get_tensor(model.get_output_details()[0]["index"])[0, :, :, 0]
        return np.clip(cv2.resize(probability, (width, height), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)

    def mask(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 sRGB -> (H, W) float32 soft person mask, steadied with the previous frame."""
        current = self.raw_mask(image)
        previous = self._previous
        if previous is not None and previous.shape == current.shape:
            uncertainty = 1.0 - np.abs(2.0 * current - 1.0)
            current = current + (previous - current) * (uncertainty * self.previous_weight)
        self._previous = current.astype(np.float32)
        return self._previous.copy()
