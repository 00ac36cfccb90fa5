"""What a ControlNet is shown of the source frame: its condition image.

A ControlNet is trained on one kind of condition image, made from the training pictures
by one annotator; shown another kind it steers the keyframe wrongly. So the kind is
the user's to choose (``control`` option or ``$RETAKE_CONTROL``), to match the
ControlNet they have:

* ``canny`` (the default): OpenCV's Canny edges (thresholds 100/200 on 8-bit grey, as
  ControlNet's own canny annotator), white on black, 0 or 1.
* ``lineart``: a line drawing by XDoG (extended difference of Gaussians, Winnemöller et
  al. 2012) on the sRGB luma, made without any learned model. It *approximates* the
  learned lineart annotator the lineart ControlNets were trained with (lllyasviel's
  ``control_v11p_sd15_lineart``/``lineart_anime``): lines along the picture's contours,
  soft-edged, but purely tonal (a contour between two areas of the same luma draws
  nothing; texture with contrast draws lines the learned model might leave out). White
  lines on black, 0..1: the polarity those ControlNets take. (The learned annotator
  itself draws black on white; ControlNet's own lineart demo feeds the network
  ``1 - drawing`` and controlnet_aux's ``LineartDetector`` returns ``255 - drawing``.)
* ``depth``: a depth map from a depth-estimation model the user has on disk
  (``depth_model`` option or ``$RETAKE_DEPTH_MODEL``: a transformers folder such as DPT
  or Depth Anything saved with ``save_pretrained``), normalised to 0..1 with near bright
  and far dark, as depth ControlNets were trained on (MiDaS-style inverse depth, min-max
  normalised). Relative models (DPT, Depth Anything) predict inverse depth already;
  metric ones (ZoeDepth, GLPN, Depth Pro, Depth Anything "metric") predict distance,
  so their map is inverted (1 / distance) first.

Every condition image is (h, w, 3) float32 0..1 (the same value in the three channels)
at the working size of the source it was made from, which is sRGB code values 0..1.
"""
from __future__ import annotations

import inspect
import math
import os
from typing import Any

import numpy as np
import torch

from engine.errors import InputError

__all__ = ["CONTROL_ENV", "CONTROL_KINDS", "DEFAULT_CONTROL", "DEPTH_MODEL_ENV", "DepthEstimator", "canny",
           "check_control", "check_depth_model_path", "lineart", "normalise_depth", "picture"]

CONTROL_ENV = "RETAKE_CONTROL"
DEPTH_MODEL_ENV = "RETAKE_DEPTH_MODEL"
CONTROL_KINDS = ("canny", "lineart", "depth")
DEFAULT_CONTROL = "canny"

_CANNY_THRESHOLDS = (100, 200)
# Rec.709 luma weights, applied to sRGB code values (Y', not linear luminance): the lines
# follow the picture as it is seen.
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
# XDoG: D = G(sigma) - tau * G(k * sigma); line where D < eps, darkening as 1 + tanh(phi * (D - eps)).
# sigma 1 px at the working resolution (short side ~512, where the ControlNet was trained) makes
# strokes 3-4 px wide, a little bolder than the learned annotator's; k = 1.6 is the classic DoG
# ratio; tau < 1 keeps flat areas (D = (1 - tau) * luma >= 0) empty and makes the threshold grow
# with brightness, as the eye's does. With eps and phi: a step draws at half strength from a
# contrast of about 0.05 + 0.18 x the luma of its darker side (0.08 on 0.2), and 1-2 % grain on
# a flat area draws (almost) nothing; more sensitive settings drew the grain.
_XDOG_SIGMA = 1.0
_XDOG_K = 1.6
_XDOG_TAU = 0.98
_XDOG_EPSILON = -0.002
_XDOG_PHI = 200.0
# Depth models that predict distance (far = large) rather than inverse depth.
_METRIC_DEPTH_MODELS = ("zoedepth", "glpn", "depth_pro")


def check_control(kind: str) -> str:
    """``kind`` lower-cased if it is one of CONTROL_KINDS; else an InputError that lists them."""
    name = str(kind).strip().lower()
    if name not in CONTROL_KINDS:
        raise InputError(f"unknown ControlNet condition {kind!r}",
                         hint=f"set {CONTROL_ENV} (or the 'control' option) to one of {', '.join(CONTROL_KINDS)}, "
                              "the kind of condition image the ControlNet was trained on")
    return name


def check_depth_model_path(path: str | None) -> str:
    """The absolute path of a transformers model folder (with config.json); else an InputError naming the variable."""
    hint = (f"set {DEPTH_MODEL_ENV} (or the 'depth_model' option) to a local depth-estimation model folder (a "
            "transformers DPT or Depth Anything model saved with save_pretrained, with config.json); Retake never "
            "downloads weights")
    if not path:
        raise InputError("the depth ControlNet needs a depth-estimation model, and none is configured", hint=hint)
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(path):
        raise InputError("no depth-estimation model folder at this path", path=path, hint=hint)
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise InputError("the depth-estimation model folder is not in transformers format (no config.json)",
                         path=path, hint=hint)
    return path


def picture(image: np.ndarray) -> Any:
    """(h, w, 3) float32 sRGB 0..1 -> an 8-bit RGB PIL image, what transformers image processors expect.

    (A float array would be rescaled by 1/255 a second time by the processor.)
    """
    from PIL import Image

    return Image.fromarray((np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), mode="RGB")


def _three(grey: np.ndarray) -> np.ndarray:
    """(h, w) -> (h, w, 3) float32, the same value in every channel (ControlNets take RGB)."""
    return np.repeat(np.ascontiguousarray(grey, dtype=np.float32)[..., None], 3, axis=2)


def canny(image: np.ndarray) -> np.ndarray:
    """(h, w, 3) float32 sRGB 0..1 -> (h, w, 3) float32 0/1 edge map, what canny ControlNets were trained on."""
    import cv2

    grey = cv2.cvtColor((image * 255.0 + 0.5).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(grey, *_CANNY_THRESHOLDS)
    return _three((edges > 0).astype(np.float32))


def lineart(image: np.ndarray) -> np.ndarray:
    """(h, w, 3) float32 sRGB 0..1 -> (h, w, 3) float32 0..1 line drawing: white lines on black.

    XDoG (Winnemöller et al. 2012) on the sRGB luma Y': an approximation of the learned
    lineart annotator, see the module's docstring. Lines lie on the darker side of each
    contour; flat areas, smooth gradients, faint steps (below about 0.05 + 0.18 x the
    darker side's luma) and the frame's edge stay 0.
    """
    import cv2

    luma = np.ascontiguousarray(np.clip(image, 0.0, 1.0) @ _LUMA, dtype=np.float32)
    # The frame's edge is not a contour. Beyond it the picture is continued by point
    # reflection through the edge pixel (2 * edge - mirror image): a gradient runs on
    # straight, where a replicated or mirrored border would bend it, and a bend draws a line.
    pad = int(math.ceil(4.0 * _XDOG_SIGMA * _XDOG_K))
    height, width = luma.shape
    if min(height, width) > pad:
        mirrored = cv2.copyMakeBorder(luma, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
        edge = cv2.copyMakeBorder(luma, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        padded = 2.0 * edge - mirrored
    else:
        padded = cv2.copyMakeBorder(luma, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    narrow = cv2.GaussianBlur(padded, (0, 0), _XDOG_SIGMA)[pad:pad + height, pad:pad + width]
    wide = cv2.GaussianBlur(padded, (0, 0), _XDOG_SIGMA * _XDOG_K)[pad:pad + height, pad:pad + width]
    difference = narrow - np.float32(_XDOG_TAU) * wide
    drawing = np.where(difference >= _XDOG_EPSILON, 1.0,
                       1.0 + np.tanh(_XDOG_PHI * (difference - _XDOG_EPSILON)))   # black lines on white paper
    return _three(np.clip(1.0 - drawing, 0.0, 1.0))


def normalise_depth(depth: np.ndarray, metric: bool) -> np.ndarray:
    """(h, w) a depth model's prediction -> (h, w) float32 0..1, near = 1, far = 0.

    ``metric``: the prediction is distance (far = large), inverted to 1 / distance first;
    otherwise it is inverse depth already (near = large). Min-max normalised over the
    frame, as the depth ControlNets' training maps were; a flat prediction (no depth
    information) gives 0 everywhere.
    """
    values = np.nan_to_num(np.asarray(depth, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if metric:
        values = 1.0 / np.maximum(values, 1e-6)
    low, high = float(values.min()), float(values.max())
    # Relative to the values' size: a random or badly scaled model may predict tiny numbers.
    if not high - low > 1e-6 * max(abs(low), abs(high), 1e-30):
        return np.zeros(values.shape, dtype=np.float32)
    return ((values - low) / (high - low)).astype(np.float32)


class DepthEstimator:
    """A transformers depth-estimation model and its image processor, on one device.

    ``load`` builds one from a local folder; calling it on (h, w, 3) float32 sRGB 0..1
    gives the (h, w, 3) float32 0..1 depth condition, near bright.
    """

    def __init__(self, model: Any, processor: Any, device: torch.device, dtype: torch.dtype) -> None:
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype
        config = model.config
        self.metric = (getattr(config, "model_type", "") in _METRIC_DEPTH_MODELS
                       or getattr(config, "depth_estimation_type", "relative") == "metric")

    @classmethod
    def load(cls, path: str, device: torch.device, dtype: torch.dtype) -> DepthEstimator:
        """The model in ``path`` (a folder from ``check_depth_model_path``), local files only.

        Its preprocessor_config.json gives the processor; a folder without one gets the
        model type's own processor with its defaults, at the input size the model's
        config declares (``image_size``). The PIL backend always, so that a machine with
        torchvision makes the same condition image as one without. The caller holds
        HF_HUB_OFFLINE.
        """
        try:
            import transformers
        except ImportError as error:
            raise InputError(f"the depth condition cannot import its library: {error}",
                             hint="install it into Retake's environment: pip install transformers") from error
        hint = (f"check that {DEPTH_MODEL_ENV} names a transformers depth-estimation model (DPT, Depth Anything, "
                "ZoeDepth, ... for AutoModelForDepthEstimation) saved with save_pretrained")
        try:
            model = transformers.AutoModelForDepthEstimation.from_pretrained(path, dtype=dtype,
                                                                             local_files_only=True)
            if os.path.isfile(os.path.join(path, "preprocessor_config.json")):
                processor = transformers.AutoImageProcessor.from_pretrained(path, local_files_only=True,
                                                                            backend="pil")
            else:
                processor = _default_processor(model.config)
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as error:
            raise InputError(f"cannot load the depth-estimation model: {error}", path=path, hint=hint) from error
        model.eval()
        return cls(model.to(device), processor, device, dtype)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """(h, w, 3) float32 sRGB 0..1 -> (h, w, 3) float32 0..1 depth condition, near = 1."""
        height, width = image.shape[:2]
        inputs = self.processor(images=picture(image), return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device, self.dtype)
        with torch.no_grad():
            outputs = self.model(pixel_values=pixels)
        # Post-processing in float32: fp16 bicubic resampling and 1 / depth lose too much.
        outputs.predicted_depth = outputs.predicted_depth.float()
        post = getattr(self.processor, "post_process_depth_estimation", None)
        if post is not None:
            # The processor's own: it undoes what it did (ZoeDepth's padding, Depth Pro's field of view).
            options: dict[str, Any] = {"target_sizes": [(height, width)]}
            if "source_sizes" in inspect.signature(post).parameters:
                options["source_sizes"] = [(height, width)]
            depth = post(outputs, **options)[0]["predicted_depth"]
        else:
            depth = torch.nn.functional.interpolate(outputs.predicted_depth[:, None], size=(height, width),
                                                    mode="bicubic", align_corners=False)[0, 0]
        return _three(normalise_depth(depth.detach().float().cpu().numpy().reshape(height, width), self.metric))


def _default_processor(config: Any) -> Any:
    """The model type's own image processor (PIL backend) with its defaults, at the config's ``image_size``."""
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING

    classes = IMAGE_PROCESSOR_MAPPING[type(config)]   # KeyError: a model type without an image processor
    if isinstance(classes, dict):
        found = classes.get("pil") or next((c for c in classes.values() if c is not None), None)
    else:
        found = classes
    if found is None:
        raise ValueError(f"no image processor for {type(config).__name__}; add its preprocessor_config.json")
    size = getattr(config, "image_size", None) or getattr(getattr(config, "backbone_config", None), "image_size", None)
    processor = found()
    defaults = getattr(processor, "size", None)
    # Only where the processor resizes to a height and width (DPT's kind); others keep their own rule.
    if isinstance(size, int) and getattr(defaults, "height", None) and getattr(defaults, "width", None):
        processor = found(size={"height": size, "width": size})
    return processor
