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
  diffusers ControlNet folder, canny-conditioned) holds the source's edges; its
  conditioning scale follows ``structure`` too (0.3 at 1, 1.0 at 9).
* ``motion`` is not used: one img2img keyframe has no motion; propagation uses it.
* the reference image is not used yet (``supports_reference = False``; an IP-Adapter
  needs an image encoder and adapter weights the user would have to provide).

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
from engine.resize import resize

if TYPE_CHECKING:
    from engine.colour import Colour

__all__ = ["CONTROLNET_ENV", "MODEL_CONFIG_ENV", "MODEL_ENV", "DiffusersGenerator", "controlnet_scale_for_structure",
           "decode_from_model", "encode_for_model", "restore_highlights", "strength_for_structure"]

MODEL_ENV = "RETAKE_MODEL_DIR"
CONTROLNET_ENV = "RETAKE_CONTROLNET_DIR"
MODEL_CONFIG_ENV = "RETAKE_MODEL_CONFIG"
MODEL_SPACE = "sRGB Encoded Rec.709 (sRGB)"
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")

STRENGTH_FREE = 0.9    # structure 1
STRENGTH_TIGHT = 0.2   # structure 9
CONTROL_FREE = 0.3
CONTROL_TIGHT = 1.0
_CANNY_THRESHOLDS = (100, 200)
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


def _canny(model_in: np.ndarray) -> np.ndarray:
    """(h, w, 3) float32 sRGB 0..1 -> (h, w, 3) float32 0/1 edge map, what canny ControlNets were trained on."""
    import cv2

    grey = cv2.cvtColor((model_in * 255.0 + 0.5).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(grey, *_CANNY_THRESHOLDS)
    return np.repeat((edges > 0).astype(np.float32)[..., None], 3, axis=2)


# --- the generator ---------------------------------------------------------------------------

class DiffusersGenerator(Generator):
    """img2img with a local diffusers model. The model loads on the first ``generate``.

    Options: ``model`` (else ``$RETAKE_MODEL_DIR``), ``controlnet`` (else
    ``$RETAKE_CONTROLNET_DIR``; optional), ``config`` (for a single-file checkpoint, else
    ``$RETAKE_MODEL_CONFIG``), ``device`` ("cpu", "cuda", ...), ``colour`` (the job's
    ``engine.colour.Colour``; default: a new one), ``steps`` (inference steps at full
    strength), ``guidance`` (classifier-free guidance scale), ``short_side`` (working
    resolution). Raises InputError naming ``RETAKE_MODEL_DIR`` when no model is set.
    """

    name = "diffusers"
    supports_reference = False

    def __init__(self, model: str | None = None, *, controlnet: str | None = None, config: str | None = None,
                 device: str | torch.device = "cpu", colour: Colour | None = None, steps: int = 30,
                 guidance: float = 7.5, short_side: int = 512, **unknown: Any) -> None:
        if unknown:
            raise InputError(f"unknown option(s) for the diffusers keyframe generator: {', '.join(sorted(unknown))}",
                             hint="known: model, controlnet, config, device, colour, steps, guidance, short_side")
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
        config = config or os.environ.get(MODEL_CONFIG_ENV) or None
        self.config_path = os.path.abspath(os.path.expanduser(config)) if config else None
        if steps < 1 or guidance < 0 or short_side < 64:
            raise InputError(f"bad diffusers options: steps={steps}, guidance={guidance}, short_side={short_side}",
                             hint="steps >= 1, guidance >= 0, short_side >= 64")
        self.device = torch.device(device)
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.steps = int(steps)
        self.guidance = float(guidance)
        self.short_side = int(short_side)
        self._colour = colour
        self._pipe: Any = None
        self._stamp: str | None = None

    # -- identity -----------------------------------------------------------------------------

    @property
    def model(self) -> str:
        name = os.path.basename(self.model_path.rstrip(os.sep))
        if self.controlnet_path:
            name += " + " + os.path.basename(self.controlnet_path.rstrip(os.sep))
        return name

    @property
    def fingerprint(self) -> str:
        if self._stamp is None:
            parts = [self.model, _files_stamp(self.model_path)]
            if self.controlnet_path:
                parts.append(_files_stamp(self.controlnet_path))
            parts += [f"steps={self.steps}", f"guidance={self.guidance}", f"short_side={self.short_side}",
                      f"dtype={str(self.dtype).removeprefix('torch.')}"]
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
        pipe.set_progress_bar_config(disable=True)
        return pipe.to(self.device)

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
            kwargs["control_image"] = _canny(model_in)[None]
            kwargs["controlnet_conditioning_scale"] = controlnet_scale_for_structure(request.structure)
        result = pipe(**kwargs)
        flagged = getattr(result, "nsfw_content_detected", None)
        if flagged and any(flagged):
            raise InputError("the model's safety checker blanked the generated keyframe", frame=request.frame,
                             hint="rephrase the prompt, or use a model folder without a safety_checker component")
        generated = np.asarray(result.images[0], dtype=np.float32)
        generated = np.clip(resize(np.ascontiguousarray(generated), width, height, torch.device("cpu")), 0.0, 1.0)
        seen = decode_from_model(colour, shown)
        return restore_highlights(source, seen, decode_from_model(colour, generated))
