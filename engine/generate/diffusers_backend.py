"""The ``diffusers`` keyframe generator: Stable-Diffusion-class img2img from local files.

The model is the user's: a folder in diffusers format (with ``model_index.json``:
SD 1.x/2.x, SDXL and whatever else ``AutoPipelineForImage2Image`` knows) or a
single-file SD 1.x/2.x checkpoint (``.safetensors``/``.ckpt``, loaded with
``from_single_file``; its component configs come from a local diffusers folder named
by ``config``/``$RETAKE_MODEL_CONFIG``, since they cannot be fetched). Given as the
``model`` option or ``$RETAKE_MODEL_DIR``. Everything is loaded with
``local_files_only=True`` and ``HF_HUB_OFFLINE=1``: nothing is ever downloaded, and a
missing file is an error that says so.

Controls:

* ``structure`` 1-9 sets the img2img strength, how far the model may move away from
  the source: 9 -> 0.2 (the layout kept tightly), 1 -> 0.9 (almost free).
* an optional ControlNet (``controlnet`` option or ``$RETAKE_CONTROLNET_DIR``, a local
  diffusers ControlNet folder) holds the source's layout; its conditioning scale follows
  ``structure`` too (0.3 at 1, 1.0 at 9). It is shown the condition image it was trained
  on, named by ``control`` / ``$RETAKE_CONTROL`` (``engine.generate.control``): "canny"
  (the default: the source's Canny edges), "lineart" (an XDoG line drawing, white on
  black, approximating the learned lineart annotator) or "depth" (the depth map of a
  local transformers depth-estimation model, ``depth_model`` / ``$RETAKE_DEPTH_MODEL``,
  near bright). "lineart" or "depth" without a ControlNet is an error, not ignored.
* ``motion`` is not used: one img2img keyframe has no motion; propagation uses it.
* the reference image steers the look through an optional IP-Adapter (``ip_adapter``
  option or ``$RETAKE_IP_ADAPTER``: a local weights file, ``.safetensors``/``.bin``, or a
  folder holding exactly one) and its CLIP image encoder (``image_encoder`` option or
  ``$RETAKE_IP_ADAPTER_ENCODER``, a transformers ``CLIPVisionModelWithProjection`` folder;
  default: ``image_encoder/`` inside the weights' folder, else beside it). The reference
  is encoded to sRGB like the source, clipped to 0..1, quantised to 8 bits (what CLIP
  was trained on) and given to the adapter at ``reference_scale`` (default 0.6). Without
  an adapter ``supports_reference`` is False and the reference is ignored (with a
  warning from the caller). With one, a request without a reference runs the adapter at
  scale 0, where diffusers skips its attention: the keyframe is the adapter-less one.

The same request and seed give the same keyframe: the noise comes from a
``torch.Generator`` seeded on the device (CUDA) or the CPU (CPU, MPS). fp16 on CUDA,
float32 elsewhere.

Colour: the model was trained on sRGB pictures. The frame goes from scene-linear
ACEScg to sRGB code values through OpenColorIO (the config's "sRGB Encoded Rec.709
(sRGB)" space: in the studio config the same code values as the "sRGB - Display" /
"Un-tone-mapped" view the analysis models see, for every colour a model can see, and
its inverse is exact), clipped to 0..1, at a working resolution (short side
``short_side``, default 512, never upscaled; sizes rounded to what the UNet accepts).
The result comes back the same way to ACEScg and is resampled to the source's size, so
its finest detail is the model's at the working resolution (propagation at high
``structure`` takes the detail from the source anyway). Highlights the encoding clipped (the sun at 40.0) are
restored from the source rather than left at display white: where the source exceeded
white, its excess over what the model saw is added back, scaled by how bright the model
left that pixel (``restore_highlights``). Colours outside sRGB's gamut are clipped by the
model's encoding like any sRGB picture's (below white they are not restored: the model
may have changed them).
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from engine.errors import InputError
from engine.generate.base import GenerateRequest, Generator
from engine.generate.control import CONTROL_ENV, DEFAULT_CONTROL, DEPTH_MODEL_ENV, DepthEstimator, canny, \
    check_control, check_depth_model_path, lineart, picture
from engine.resize import resize

if TYPE_CHECKING:
    from engine.colour import Colour

__all__ = ["CONTROLNET_ENV", "CONTROL_ENV", "DEPTH_MODEL_ENV", "IP_ADAPTER_ENCODER_ENV", "IP_ADAPTER_ENV",
           "MODEL_CONFIG_ENV", "MODEL_ENV", "DiffusersGenerator", "controlnet_scale_for_structure",
           "decode_from_model", "encode_for_model", "restore_highlights", "strength_for_structure"]

MODEL_ENV = "RETAKE_MODEL_DIR"
CONTROLNET_ENV = "RETAKE_CONTROLNET_DIR"
MODEL_CONFIG_ENV = "RETAKE_MODEL_CONFIG"
IP_ADAPTER_ENV = "RETAKE_IP_ADAPTER"
IP_ADAPTER_ENCODER_ENV = "RETAKE_IP_ADAPTER_ENCODER"
MODEL_SPACE = "sRGB Encoded Rec.709 (sRGB)"
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
IP_ADAPTER_SUFFIXES = (".safetensors", ".bin")
DEFAULT_REFERENCE_SCALE = 0.6
# What load_ip_adapter builds for the adapters a CLIP image embedding drives (plain, plus,
# full-face); FaceID adapters need face-recognition embeddings instead.
_CLIP_DRIVEN_PROJECTIONS = ("ImageProjection", "IPAdapterPlusImageProjection", "IPAdapterFullImageProjection")

STRENGTH_FREE = 0.9    # structure 1
STRENGTH_TIGHT = 0.2   # structure 9
CONTROL_FREE = 0.3
CONTROL_TIGHT = 1.0
_SMALL_FILE = 1 << 20  # configs and vocabularies are hashed; weights are stamped by size


def strength_for_structure(structure: int) -> float:
    """img2img strength for ``structure`` 1-9: 0.9 (free) at 1 down to 0.2 (tight) at 9, linearly."""
    return STRENGTH_FREE + (STRENGTH_TIGHT - STRENGTH_FREE) * (structure - 1) / 8.0


def controlnet_scale_for_structure(structure: int) -> float:
    """ControlNet conditioning scale for ``structure`` 1-9: 0.3 at 1 up to 1.0 at 9."""
    return CONTROL_FREE + (CONTROL_TIGHT - CONTROL_FREE) * (structure - 1) / 8.0


# --- colour ---------------------------------------------------------------------------

def encode_for_model(colour: Colour, working: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 scene-linear ACEScg -> (H, W, 3) float32 sRGB code values, unclamped."""
    return colour.convert(np.ascontiguousarray(working, dtype=np.float32), colour.working_space, MODEL_SPACE)


def decode_from_model(colour: Colour, encoded: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 sRGB code values -> (H, W, 3) float32 scene-linear ACEScg."""
    return colour.convert(np.ascontiguousarray(encoded, dtype=np.float32), MODEL_SPACE, colour.working_space)


def restore_highlights(source: np.ndarray, seen: np.ndarray, generated: np.ndarray) -> np.ndarray:
    """The generated keyframe with the source's clipped highlights put back.

    All (H, W, 3) float32 scene-linear ACEScg. source: the frame; seen: what the model
    was shown (the source's sRGB encoding clipped to 0..1, decoded); generated: the
    model's output, decoded. Where the source exceeds display white (a channel above
    1.0: in the "Un-tone-mapped" sRGB view scene 1.0 is display white), its excess over
    ``seen`` is added to ``generated``, scaled by ``generated / seen`` (brightest
    channel, limited to 0..1): a highlight the model kept comes back at full HDR
    strength, one it darkened comes back in proportion, and nothing changes below
    white. Colours outside sRGB's gamut but below white stay as the model made them.
    """
    over = source.max(axis=-1) > 1.0
    excess = np.where(over[..., None], np.maximum(source - seen, 0.0), 0.0)
    ratio = np.clip(generated.max(axis=-1) / np.maximum(seen.max(axis=-1), 1e-6), 0.0, 1.0)
    return (generated + excess * ratio[..., None]).astype(np.float32)


# --- model files --------------------------------------------------------------------------

def _files_stamp(path: str) -> str:
    """A short digest of a model file or folder: names and sizes of its files, contents of the small ones.

    Not its location (a farm mounts the same model at different paths) and not mtimes
    (a copy changes them); hashing gigabytes of weights on every run would be too slow.
    """
    digest = hashlib.sha256()
    if os.path.isfile(path):
        digest.update(f"{os.path.basename(path)}:{os.path.getsize(path)}".encode())
        return digest.hexdigest()[:16]
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            full = os.path.join(root, name)
            size = os.path.getsize(full)
            digest.update(f"{os.path.relpath(full, path)}:{size}".encode())
            if size <= _SMALL_FILE:
                with open(full, "rb") as handle:
                    digest.update(handle.read())
    return digest.hexdigest()[:16]


def _check_model_path(path: str, what: str, option: str, env: str) -> str:
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "model_index.json" if what == "model" else "config.json")):
            expected = "model_index.json" if what == "model" else "config.json"
            raise InputError(f"the {what} folder is not in diffusers format (no {expected})", path=path,
                             hint=f"point {env} (or the {option!r} option) at a diffusers folder saved with "
                                  "save_pretrained" + (", or at a single-file .safetensors checkpoint"
                                                       if what == "model" else ""))
        return path
    if os.path.isfile(path) and what == "model" and path.lower().endswith(SINGLE_FILE_SUFFIXES):
        return path
    raise InputError(f"no {what} at this path", path=path,
                     hint=f"set {env} (or the {option!r} option) to a local diffusers folder"
                          + (" or a single-file checkpoint (.safetensors, .ckpt)" if what == "model" else ""))


def _check_ip_adapter_path(path: str) -> str:
    """The IP-Adapter weights file: ``path`` itself, or the one .safetensors/.bin file in the folder ``path``."""
    path = os.path.abspath(os.path.expanduser(path))
    hint = (f"set {IP_ADAPTER_ENV} (or the 'ip_adapter' option) to a local IP-Adapter weights file (.safetensors or "
            ".bin) or a folder holding exactly one; Retake never downloads weights")
    if os.path.isfile(path):
        if path.lower().endswith(IP_ADAPTER_SUFFIXES):
            return path
        raise InputError("the IP-Adapter weights are not a .safetensors or .bin file", path=path, hint=hint)
    if os.path.isdir(path):
        found = sorted(name for name in os.listdir(path) if not name.startswith(".")
                       and name.lower().endswith(IP_ADAPTER_SUFFIXES) and os.path.isfile(os.path.join(path, name)))
        if len(found) == 1:
            return os.path.join(path, found[0])
        what = f"{len(found)} weights files ({', '.join(found[:4])})" if found else "no weights file"
        raise InputError(f"the IP-Adapter folder holds {what}, not exactly one", path=path, hint=hint)
    raise InputError("no IP-Adapter weights at this path", path=path, hint=hint)


def _check_image_encoder_path(encoder: str | None, weights: str) -> str:
    """The CLIP image encoder's folder: ``encoder``, else ``image_encoder/`` in the weights' folder or beside it."""
    if encoder:
        candidates = [os.path.abspath(os.path.expanduser(encoder))]
    else:
        folder = os.path.dirname(weights)
        candidates = [os.path.join(folder, "image_encoder"), os.path.join(os.path.dirname(folder), "image_encoder")]
    for candidate in candidates:
        if os.path.isfile(os.path.join(candidate, "config.json")):
            return candidate
    raise InputError("no CLIP image encoder for the IP-Adapter (a folder with config.json)", path=candidates[0],
                     hint=f"set {IP_ADAPTER_ENCODER_ENV} (or the 'image_encoder' option) to the adapter's local "
                          "image_encoder folder (a transformers CLIPVisionModelWithProjection saved with "
                          f"save_pretrained), or put it in image_encoder/ beside the weights {IP_ADAPTER_ENV} names")


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """HF_HUB_OFFLINE=1 (and no telemetry) while loading: belt and braces with local_files_only."""
    names = ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY")
    before = {name: os.environ.get(name) for name in names}
    for name in names:
        os.environ[name] = "1"
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --- the generator ---------------------------------------------------------------------------

class DiffusersGenerator(Generator):
    """img2img with a local diffusers model. The model loads on the first ``generate``.

    Options: ``model`` (else ``$RETAKE_MODEL_DIR``), ``controlnet`` (else
    ``$RETAKE_CONTROLNET_DIR``; optional), ``control`` (else ``$RETAKE_CONTROL``; "canny",
    "lineart" or "depth", the ControlNet's condition image), ``depth_model`` (else
    ``$RETAKE_DEPTH_MODEL``; for "depth"), ``config`` (for a single-file checkpoint, else
    ``$RETAKE_MODEL_CONFIG``), ``device`` ("cpu", "cuda", ...), ``colour`` (the job's
    ``engine.colour.Colour``; default: a new one), ``steps`` (inference steps at full
    strength), ``guidance`` (classifier-free guidance scale), ``short_side`` (working
    resolution), ``ip_adapter`` (else ``$RETAKE_IP_ADAPTER``; optional), ``image_encoder``
    (else ``$RETAKE_IP_ADAPTER_ENCODER``; default beside the adapter), ``reference_scale``
    (0..1, how strongly the reference steers the keyframe). Raises InputError naming
    ``RETAKE_MODEL_DIR`` when no model is set, naming the variable to fix when a path is
    wrong, and naming ``RETAKE_CONTROLNET_DIR`` when "lineart" or "depth" has no ControlNet
    to condition. ``supports_reference`` is True on an instance with an IP-Adapter.
    """

    name = "diffusers"
    supports_reference = False

    def __init__(self, model: str | None = None, *, controlnet: str | None = None, config: str | None = None,
                 device: str | torch.device = "cpu", colour: Colour | None = None, steps: int = 30,
                 guidance: float = 7.5, short_side: int = 512, ip_adapter: str | None = None,
                 image_encoder: str | None = None, reference_scale: float = DEFAULT_REFERENCE_SCALE,
                 control: str | None = None, depth_model: str | None = None, **unknown: Any) -> None:
        if unknown:
            raise InputError(f"unknown option(s) for the diffusers keyframe generator: {', '.join(sorted(unknown))}",
                             hint="known: model, controlnet, control, depth_model, config, device, colour, steps, "
                                  "guidance, short_side, ip_adapter, image_encoder, reference_scale")
        model = model or os.environ.get(MODEL_ENV) or None
        if model is None:
            raise InputError(
                "no image model is configured for prompt keyframes (the 'diffusers' generator)",
                hint=f"set {MODEL_ENV} to a local diffusers model folder (with model_index.json) or a single-file "
                     "checkpoint (.safetensors); Retake never downloads weights")
        self.model_path = _check_model_path(model, "model", "model", MODEL_ENV)
        controlnet = controlnet or os.environ.get(CONTROLNET_ENV) or None
        self.controlnet_path = (_check_model_path(controlnet, "ControlNet", "controlnet", CONTROLNET_ENV)
                                if controlnet else None)
        self.control = check_control(control or os.environ.get(CONTROL_ENV) or DEFAULT_CONTROL)
        if self.control != DEFAULT_CONTROL and not self.controlnet_path:
            raise InputError(f"the {self.control!r} condition is for a ControlNet, and none is configured",
                             hint=f"set {CONTROLNET_ENV} (or the 'controlnet' option) to a local {self.control} "
                                  f"ControlNet folder, or unset {CONTROL_ENV}")
        # Only "depth" uses a depth model: a $RETAKE_DEPTH_MODEL set for other jobs is ignored.
        self.depth_model_path = (check_depth_model_path(depth_model or os.environ.get(DEPTH_MODEL_ENV) or None)
                                 if self.control == "depth" else None)
        config = config or os.environ.get(MODEL_CONFIG_ENV) or None
        self.config_path = os.path.abspath(os.path.expanduser(config)) if config else None
        ip_adapter = ip_adapter or os.environ.get(IP_ADAPTER_ENV) or None
        self.ip_adapter_path = _check_ip_adapter_path(ip_adapter) if ip_adapter else None
        image_encoder = image_encoder or os.environ.get(IP_ADAPTER_ENCODER_ENV) or None
        self.image_encoder_path = (_check_image_encoder_path(image_encoder, self.ip_adapter_path)
                                   if self.ip_adapter_path else None)
        # An instance attribute: only a generator with an adapter uses GenerateRequest.reference.
        self.supports_reference = self.ip_adapter_path is not None
        if steps < 1 or guidance < 0 or short_side < 64:
            raise InputError(f"bad diffusers options: steps={steps}, guidance={guidance}, short_side={short_side}",
                             hint="steps >= 1, guidance >= 0, short_side >= 64")
        if isinstance(reference_scale, bool) or not 0.0 <= float(reference_scale) <= 1.0:
            raise InputError(f"bad diffusers option: reference_scale={reference_scale!r}",
                             hint="reference_scale is from 0 (the reference ignored) to 1 (full strength)")
        self.reference_scale = float(reference_scale)
        self.device = torch.device(device)
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.steps = int(steps)
        self.guidance = float(guidance)
        self.short_side = int(short_side)
        self._colour = colour
        self._pipe: Any = None
        self._depth: DepthEstimator | None = None
        self._stamp: str | None = None

    # -- identity -----------------------------------------------------------------------------

    @property
    def model(self) -> str:
        name = os.path.basename(self.model_path.rstrip(os.sep))
        if self.controlnet_path:
            name += " + " + os.path.basename(self.controlnet_path.rstrip(os.sep))
            if self.depth_model_path:
                name += f" ({self.control}: {os.path.basename(self.depth_model_path.rstrip(os.sep))})"
            elif self.control != DEFAULT_CONTROL:
                name += f" ({self.control})"
        if self.ip_adapter_path:
            name += " + " + os.path.splitext(os.path.basename(self.ip_adapter_path))[0]
        return name

    @property
    def fingerprint(self) -> str:
        if self._stamp is None:
            parts = [self.model, _files_stamp(self.model_path)]
            if self.controlnet_path:
                parts.append(_files_stamp(self.controlnet_path))
            parts += [f"steps={self.steps}", f"guidance={self.guidance}", f"short_side={self.short_side}",
                      f"dtype={str(self.dtype).removeprefix('torch.')}"]
            # Only when not canny, so that fingerprints (and keyframes) made before the choice stay current.
            if self.control != DEFAULT_CONTROL:
                parts.append(f"control={self.control}")
            if self.depth_model_path:
                parts.append(f"depth_model={_files_stamp(self.depth_model_path)}")
            # Only with an adapter, so that fingerprints (and keyframes) made without one stay current.
            if self.ip_adapter_path and self.image_encoder_path:
                parts += [f"ip_adapter={_files_stamp(self.ip_adapter_path)}",
                          f"image_encoder={_files_stamp(self.image_encoder_path)}",
                          f"reference_scale={self.reference_scale}"]
            self._stamp = "diffusers:" + "|".join(parts)
        return self._stamp

    # -- loading ----------------------------------------------------------------------------------

    @property
    def colour(self) -> Colour:
        if self._colour is None:
            from engine.colour import Colour

            self._colour = Colour()
        return self._colour

    def pipeline(self) -> Any:
        """The loaded diffusers pipeline (loaded once, on this generator's device)."""
        if self._pipe is None:
            self._pipe = self._load()
        return self._pipe

    def depth_estimator(self) -> DepthEstimator:
        """The loaded depth-estimation model for the "depth" condition (loaded once, on this generator's device)."""
        assert self.depth_model_path is not None
        if self._depth is None:
            with _offline():
                self._depth = DepthEstimator.load(self.depth_model_path, self.device, self.dtype)
        return self._depth

    def _condition(self, model_in: np.ndarray) -> np.ndarray:
        """(h, w, 3) float32 sRGB 0..1 -> (h, w, 3) float32 0..1: the ControlNet's condition image of ``model_in``."""
        if self.control == "lineart":
            return lineart(model_in)
        if self.control == "depth":
            return self.depth_estimator()(model_in)
        return canny(model_in)

    def _load(self) -> Any:
        with _offline():
            try:
                import diffusers
            except ImportError as error:
                raise InputError(f"the diffusers keyframe generator cannot import its libraries: {error}",
                                 hint="install them into Retake's environment: pip install diffusers transformers"
                                 ) from error
            options: dict[str, Any] = {"dtype": self.dtype, "local_files_only": True}
            try:
                if self.controlnet_path:
                    options["controlnet"] = diffusers.ControlNetModel.from_pretrained(
                        self.controlnet_path, dtype=self.dtype, local_files_only=True)
                if os.path.isdir(self.model_path):
                    pipe = diffusers.AutoPipelineForImage2Image.from_pretrained(self.model_path, **options)
                else:
                    cls = (diffusers.StableDiffusionControlNetImg2ImgPipeline if self.controlnet_path
                           else diffusers.StableDiffusionImg2ImgPipeline)
                    if self.config_path:
                        options["config"] = self.config_path
                    pipe = cls.from_single_file(self.model_path, **options)
            except (OSError, ValueError, KeyError, RuntimeError) as error:
                hint = "check that the folder holds every component (save_pretrained writes them all)"
                if not os.path.isdir(self.model_path):
                    hint = ("check that it is a complete SD 1.x/2.x checkpoint; its component configs and tokenizer "
                            f"cannot be fetched, so set {MODEL_CONFIG_ENV} to a local diffusers folder of the same "
                            "architecture (model_index.json, configs, tokenizer)")
                raise InputError(f"cannot load the image model: {error}", path=self.model_path, hint=hint) from error
            if self.ip_adapter_path:
                self._load_ip_adapter(pipe)
        pipe.set_progress_bar_config(disable=True)
        return pipe.to(self.device)

    def _load_ip_adapter(self, pipe: Any) -> None:
        """Register the CLIP image encoder and its processor on ``pipe``, then load the adapter into its UNet.

        The encoder is loaded here, from its own folder, so that ``load_ip_adapter`` never
        looks for one itself (it would build a path inside the adapter's "repository").
        """
        import transformers

        assert self.ip_adapter_path is not None and self.image_encoder_path is not None
        if not hasattr(pipe, "load_ip_adapter"):
            raise InputError(f"the model's pipeline ({type(pipe).__name__}) cannot take an IP-Adapter",
                             path=self.model_path, hint=f"unset {IP_ADAPTER_ENV}, or use an SD 1.x/2.x/XL model")
        encoder_hint = (f"set {IP_ADAPTER_ENCODER_ENV} to the image_encoder folder that comes with the adapter "
                        f"{IP_ADAPTER_ENV} names (a CLIPVisionModelWithProjection saved with save_pretrained)")
        try:
            encoder = transformers.CLIPVisionModelWithProjection.from_pretrained(
                self.image_encoder_path, dtype=self.dtype, local_files_only=True)
            if os.path.isfile(os.path.join(self.image_encoder_path, "preprocessor_config.json")):
                processor = transformers.CLIPImageProcessor.from_pretrained(self.image_encoder_path,
                                                                            local_files_only=True)
            else:
                # CLIP's own preprocessing (bicubic resize of the short side, centre crop, CLIP
                # mean/std are the class defaults) at the encoder's input size: 224 for real ones.
                size = int(encoder.config.image_size)
                processor = transformers.CLIPImageProcessor(size={"shortest_edge": size},
                                                            crop_size={"height": size, "width": size})
        except (OSError, ValueError, KeyError, RuntimeError) as error:
            raise InputError(f"cannot load the IP-Adapter's image encoder: {error}", path=self.image_encoder_path,
                             hint=encoder_hint) from error
        # The encoder's processor replaces the model folder's own feature_extractor (SD 1.x ships
        # one for its safety checker): it is what the encoder was trained with, and for the
        # 224-pixel CLIP encoders adapters come with, the same preprocessing anyway.
        pipe.register_modules(image_encoder=encoder, feature_extractor=processor)
        weights_hint = (f"check that {IP_ADAPTER_ENV} names an IP-Adapter for this model's architecture (SD 1.x "
                        "adapters for SD 1.x, SDXL ones for SDXL), as .safetensors or .bin")
        try:
            # A file path is used as it is (never resolved on the Hub); weight_name only tells
            # load_ip_adapter how to read it.
            pipe.load_ip_adapter(self.ip_adapter_path, subfolder="",
                                 weight_name=os.path.basename(self.ip_adapter_path), image_encoder_folder=None,
                                 local_files_only=True)
        except Exception as error:  # anything may be in that file; whatever fails, it is the wrong one
            raise InputError(f"cannot load the IP-Adapter weights: {error}", path=self.ip_adapter_path,
                             hint=weights_hint) from error
        projection = pipe.unet.encoder_hid_proj.image_projection_layers[0]
        if type(projection).__name__ not in _CLIP_DRIVEN_PROJECTIONS:
            raise InputError(f"this IP-Adapter ({type(projection).__name__}) is driven by face-recognition "
                             "embeddings, not a CLIP image encoder", path=self.ip_adapter_path,
                             hint="use a plain or plus IP-Adapter")
        # A plain adapter projects the encoder's image embedding: their sizes must agree
        # now, not as a matrix error at the first keyframe.
        expects = getattr(getattr(projection, "image_embeds", None), "in_features", None)
        if expects is not None and expects != encoder.config.projection_dim:
            raise InputError(f"the IP-Adapter takes {expects}-wide image embeddings but the image encoder makes "
                             f"{encoder.config.projection_dim}-wide ones", path=self.image_encoder_path,
                             hint=encoder_hint)

    # -- generating -----------------------------------------------------------------------------

    def _working_size(self, pipe: Any, width: int, height: int) -> tuple[int, int]:
        """(w, h): the frame scaled so its short side is at most ``short_side``, rounded to what the UNet takes."""
        vae_factor = int(getattr(pipe, "vae_scale_factor", 8))
        levels = len(getattr(getattr(pipe, "unet", None), "config", {}).get("block_out_channels", (0,) * 4))
        multiple = vae_factor * 2 ** max(levels - 1, 0)
        scale = min(1.0, self.short_side / min(width, height))
        return (max(multiple, int(round(width * scale / multiple)) * multiple),
                max(multiple, int(round(height * scale / multiple)) * multiple))

    def generate(self, request: GenerateRequest) -> np.ndarray:
        """The keyframe for ``request``: (H, W, 3) float32 scene-linear ACEScg at the source's size."""
        pipe = self.pipeline()
        colour = self.colour
        source = request.source
        height, width = source.shape[:2]
        encoded = encode_for_model(colour, source)
        shown = np.clip(encoded, 0.0, 1.0)
        work_w, work_h = self._working_size(pipe, width, height)
        model_in = np.clip(resize(shown, work_w, work_h, torch.device("cpu")), 0.0, 1.0)

        strength = strength_for_structure(request.structure)
        # img2img runs int(steps * strength) of the schedule: keep at least one step.
        steps = max(self.steps, math.ceil(1.0 / strength))
        noise_device = self.device if self.device.type == "cuda" else torch.device("cpu")
        seeded = torch.Generator(device=noise_device).manual_seed(int(request.seed))
        kwargs: dict[str, Any] = {
            "prompt": request.prompt, "image": model_in[None], "strength": strength, "num_inference_steps": steps,
            "guidance_scale": self.guidance, "generator": seeded, "output_type": "np",
        }
        if self.controlnet_path:
            kwargs["control_image"] = self._condition(model_in)[None]
            kwargs["controlnet_conditioning_scale"] = controlnet_scale_for_structure(request.structure)
        if self.ip_adapter_path:
            if request.reference is not None:
                kwargs["ip_adapter_image"] = picture(encode_for_model(colour, request.reference))
                pipe.set_ip_adapter_scale(self.reference_scale)
            else:
                # diffusers refuses a call without an adapter image once an adapter is loaded;
                # at scale 0 every IP-Adapter attention skips its image tokens, so a neutral grey
                # picture leaves the keyframe exactly what the model makes without an adapter.
                kwargs["ip_adapter_image"] = picture(np.full((8, 8, 3), 0.5, dtype=np.float32))
                pipe.set_ip_adapter_scale(0.0)
        result = pipe(**kwargs)
        flagged = getattr(result, "nsfw_content_detected", None)
        if flagged and any(flagged):
            raise InputError("the model's safety checker blanked the generated keyframe", frame=request.frame,
                             hint="rephrase the prompt, or use a model folder without a safety_checker component")
        generated = np.asarray(result.images[0], dtype=np.float32)
        generated = np.clip(resize(np.ascontiguousarray(generated), width, height, torch.device("cpu")), 0.0, 1.0)
        seen = decode_from_model(colour, shown)
        return restore_highlights(source, seen, decode_from_model(colour, generated))
