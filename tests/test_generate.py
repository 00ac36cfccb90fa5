"""Prompt keyframes: the generator registry, the diffusers backend on a tiny local model,
and the keyframe files that propagation then reads.

The diffusion model is built here from configs with random weights (a tiny UNet, VAE,
CLIP text encoder and a tokenizer from a vocabulary this file writes), saved with
``save_pretrained`` and loaded back through the backend with ``local_files_only=True``.
Its VAE is made *transparent* (residual branches zeroed, every other convolution a
centre tap), so the model's output still looks like its input and "how much of the
source survives" can be measured; the UNet and text encoder stay random. Every test
here runs with ``HF_HUB_OFFLINE=1`` and with ``socket.socket.connect`` replaced by a
function that records the attempt and raises: any network call fails the test.
"""
from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from engine.colour import Colour
from engine.errors import CancelledError, InputError
from engine.generate import GenerateRequest, Generator, available_generators, get_generator
from engine.generate import base
from engine.generate.diffusers_backend import (
    MODEL_ENV,
    DiffusersGenerator,
    decode_from_model,
    encode_for_model,
    restore_highlights,
    strength_for_structure,
)
from engine.generate.keyframes import generate_missing_keyframes, keyframe_path, needs_generation
from engine.io.aces_exr import read_exr_attributes, write_exr
from engine.io.header import AP1
from engine.job import Job, Keyframe, parse_job
from engine.keyframes import load_keyframe_image

HAVE_DIFFUSERS = all(importlib.util.find_spec(name) is not None for name in ("diffusers", "transformers"))
needs_diffusers = pytest.mark.skipif(
    not HAVE_DIFFUSERS, reason="diffusers/transformers are not installed (pip install diffusers transformers)")
SIZE = (64, 64)  # (width, height) of the test frames
STEPS = 4
_COLOUR = Colour()


# --- no network, anywhere in this module -------------------------------------------------

_NETWORK_ATTEMPTS: list[Any] = []


@pytest.fixture(scope="module", autouse=True)
def no_network() -> Any:
    def refuse(self: socket.socket, address: Any, *args: Any) -> None:
        _NETWORK_ATTEMPTS.append(address)
        raise RuntimeError(f"a test tried to reach the network: {address!r}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket.socket, "connect_ex", refuse)
        yield
    assert not _NETWORK_ATTEMPTS, f"network calls were attempted: {_NETWORK_ATTEMPTS}"


@pytest.fixture(autouse=True)
def no_network_in_this_test() -> Any:
    before = len(_NETWORK_ATTEMPTS)
    yield
    assert len(_NETWORK_ATTEMPTS) == before, f"network calls were attempted: {_NETWORK_ATTEMPTS[before:]}"


def test_the_network_guard_is_armed() -> None:
    with pytest.raises(RuntimeError, match="network"):
        socket.create_connection(("127.0.0.1", 9), timeout=0.1)
    _NETWORK_ATTEMPTS.pop()  # that one was ours


# --- frames ------------------------------------------------------------------------------

def _scene(width: int = SIZE[0], height: int = SIZE[1], sun: float | None = None) -> np.ndarray:
    """(H, W, 3) float32 ACEScg: gradients and a disc (large shapes a model keeps at high structure),
    made in linear Rec.709 so that every colour is inside the gamut an sRGB model sees."""
    yy, xx = np.mgrid[0:height, 0:width] / np.float32(max(width, height) - 1)
    disc = ((xx - 0.5) ** 2 + (yy - 0.5) ** 2 < 0.1).astype(np.float32)
    rec709 = np.stack([0.05 + 0.6 * xx, 0.05 + 0.5 * yy, 0.1 + 0.4 * disc], axis=-1).astype(np.float32)
    frame = _COLOUR.to_working(rec709, "Linear Rec.709 (sRGB)")
    if sun is not None:
        frame[2:8, 2:8] = sun
    return frame


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.mean(axis=-1).ravel(), b.mean(axis=-1).ravel())[0, 1])


# --- the tiny model ------------------------------------------------------------------------

def _byte_level_vocabulary() -> dict[str, int]:
    """CLIP's byte-level alphabet (GPT-2's bytes_to_unicode), each symbol alone and word-final."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            codes.append(256 + extra)
            extra += 1
    symbols = [chr(c) for c in codes]
    vocab: dict[str, int] = {}
    for symbol in symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]:
        vocab[symbol] = len(vocab)
    return vocab


def _make_transparent(vae: Any) -> None:
    """Residual branches zeroed, every other conv a centre tap, no sampling noise: decode(encode(x)) ~ x."""
    import torch
    from diffusers.models.attention_processor import Attention
    from diffusers.models.resnet import ResnetBlock2D

    with torch.no_grad():
        zeroed = set()
        for module in vae.modules():
            if isinstance(module, ResnetBlock2D):
                module.conv2.weight.zero_()
                module.conv2.bias.zero_()
                zeroed.add(module.conv2)
            if isinstance(module, Attention):
                module.to_out[0].weight.zero_()
                module.to_out[0].bias.zero_()
        for module in vae.modules():
            if isinstance(module, torch.nn.Conv2d) and module not in zeroed:
                module.weight.zero_()
                if module.bias is not None:
                    module.bias.zero_()
                out_channels, in_channels, kh, kw = module.weight.shape
                for o in range(out_channels):
                    module.weight[o, o % in_channels, kh // 2, kw // 2] = 1.0
        latent = vae.config.latent_channels
        vae.encoder.conv_out.weight[latent:].zero_()   # log-variance channels
        vae.encoder.conv_out.bias[latent:] = -30.0     # std ~ 3e-7: sampling adds no noise


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A tiny SD img2img pipeline and a ControlNet, saved in diffusers format: {"model": dir, "controlnet": dir}."""
    if not HAVE_DIFFUSERS:
        pytest.skip("diffusers/transformers are not installed (pip install diffusers transformers)")
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, StableDiffusionImg2ImgPipeline, \
        UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    root = tmp_path_factory.mktemp("tiny_sd")
    vocab = _byte_level_vocabulary()
    (root / "tokenizer_files").mkdir()
    (root / "tokenizer_files" / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (root / "tokenizer_files" / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tokenizer = CLIPTokenizer.from_pretrained(str(root / "tokenizer_files"), model_max_length=77,
                                              local_files_only=True)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=32)
    vae = AutoencoderKL(
        block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=32,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, sample_size=32,
        scaling_factor=1.0)
    _make_transparent(vae)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"], pad_token_id=1,
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, vocab_size=len(vocab),
        max_position_embeddings=77))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionImg2ImgPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                          scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False)
    pipe.save_pretrained(str(root / "tiny-sd"))
    # The conditioning embedding downsamples by 2, as this VAE does.
    ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32)).save_pretrained(
        str(root / "tiny-controlnet"))
    return {"model": str(root / "tiny-sd"), "controlnet": str(root / "tiny-controlnet")}


def _tiny(tiny_model: dict[str, str], **options: Any) -> Generator:
    return get_generator("diffusers", model=tiny_model["model"], device="cpu", steps=STEPS, guidance=2.0, **options)


# --- registry ---------------------------------------------------------------------------------

class Tint(Generator):
    """A cheap deterministic backend: halves the frame and lifts it."""

    name = "tint"

    def __init__(self, lift: float = 0.1, **_options: Any) -> None:
        self.lift = lift
        self.calls = 0

    @property
    def fingerprint(self) -> str:
        return f"tint:{self.lift}"

    def generate(self, request: GenerateRequest) -> np.ndarray:
        self.calls += 1
        return (request.source * np.float32(0.5) + np.float32(self.lift)).astype(np.float32)


def _fake_entry_points(monkeypatch: pytest.MonkeyPatch, **factories: Any) -> None:
    class Entry:
        def __init__(self, name: str, factory: Any) -> None:
            self.name, self.factory, self.value = name, factory, f"studio:{name}"

        def load(self) -> Any:
            if isinstance(self.factory, Exception):
                raise self.factory
            return self.factory

    real = metadata.entry_points

    def entry_points(**kwargs: Any) -> Any:
        if kwargs.get("group") == base.ENTRY_POINT_GROUP:
            return [Entry(name, factory) for name, factory in factories.items()]
        return real(**kwargs)

    monkeypatch.setattr(metadata, "entry_points", entry_points)


def test_backends_come_from_the_built_in_list_and_the_entry_point_group(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_entry_points(monkeypatch, studio=Tint, broken=ImportError("No module named 'studio_http'"))
    assert available_generators() == ["diffusers", "broken", "studio"]
    generator = get_generator("studio", lift=0.25)
    assert isinstance(generator, Tint) and generator.lift == 0.25
    monkeypatch.setenv(base.GENERATOR_ENV, "studio")
    assert isinstance(get_generator(), Tint)
    with pytest.raises(InputError, match="studio_http"):
        get_generator("broken")


def test_an_unknown_backend_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_entry_points(monkeypatch)
    with pytest.raises(InputError) as error:
        get_generator("comfy")
    text = str(error.value)
    assert "'comfy'" in text and "RETAKE_GENERATOR" in text and "diffusers" in text and "retake.generators" in text


def test_no_model_configured_names_RETAKE_MODEL_DIR(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(MODEL_ENV, raising=False)
    monkeypatch.delenv(base.GENERATOR_ENV, raising=False)
    with pytest.raises(InputError) as error:
        get_generator()
    assert "RETAKE_MODEL_DIR" in str(error.value) and "never downloads" in str(error.value)
    with pytest.raises(InputError, match="model_index.json"):
        get_generator("diffusers", model=str(tmp_path))
    with pytest.raises(InputError, match="no model at this path"):
        get_generator("diffusers", model=str(tmp_path / "missing"))
    monkeypatch.setenv(MODEL_ENV, str(tmp_path / "missing.safetensors"))
    with pytest.raises(InputError, match="RETAKE_MODEL_DIR"):
        get_generator("diffusers")


def test_the_engine_stays_light_until_a_model_is_used(tmp_path: Path) -> None:
    (tmp_path / "model_index.json").write_text("{}", encoding="utf-8")
    code = (
        "import sys\n"
        "import engine, engine.generate, engine.generate.keyframes, engine.generate.prompts, engine.commands.prompts\n"
        "from engine.generate import get_generator\n"
        f"g = get_generator('diffusers', model={str(tmp_path)!r})\n"
        "print(g.model, g.fingerprint)\n"
        "heavy = [m for m in ('diffusers', 'transformers', 'huggingface_hub') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr


def test_a_request_checks_its_pixels_and_controls() -> None:
    frame = _scene()
    with pytest.raises(ValueError, match="float32"):
        GenerateRequest(source=frame.astype(np.float64), prompt="a purple sky")
    with pytest.raises(ValueError, match="structure"):
        GenerateRequest(source=frame, prompt="a purple sky", structure=10)
    with pytest.raises(ValueError, match="empty"):
        GenerateRequest(source=frame, prompt="  ")


# --- colour and controls, without a model ----------------------------------------------------------

def test_the_model_sees_the_srgb_display_view_and_the_way_back_is_exact() -> None:
    colour = Colour()
    frame = _scene()
    encoded = encode_for_model(colour, frame)
    view = colour.to_display(frame, "sRGB - Display", "Un-tone-mapped")
    # Equal where a model can see it (out-of-gamut negatives differ in sign handling, and both clip to 0).
    assert np.abs(np.clip(encoded, 0, 1) - np.clip(view, 0, 1)).max() < 1e-5
    assert np.abs(decode_from_model(colour, encoded) - frame).max() < 1e-5


class _IdentityPipe:
    """Stands in for a diffusers pipeline: returns its input image (optionally scaled), records the call."""

    vae_scale_factor = 8
    unet = SimpleNamespace(config={"block_out_channels": (320, 640, 1280, 1280)})

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        return SimpleNamespace(images=kwargs["image"] * np.float32(self.scale), nsfw_content_detected=None)


def _with_pipe(tmp_path: Path, pipe: _IdentityPipe, **options: Any) -> DiffusersGenerator:
    (tmp_path / "model_index.json").write_text("{}", encoding="utf-8")
    generator = DiffusersGenerator(str(tmp_path), colour=Colour(), **options)
    generator._pipe = pipe  # the pipeline is loaded lazily; this one needs no weights
    return generator


def test_highlights_the_display_encoding_clipped_come_back_from_the_source(tmp_path: Path) -> None:
    source = _scene(128, 64, sun=40.0)
    keep = _IdentityPipe()
    out = _with_pipe(tmp_path, keep).generate(GenerateRequest(source=source, prompt="a sunny sky", structure=9))
    assert out.shape == source.shape and out.dtype == np.float32
    assert np.allclose(out, source, rtol=1e-4, atol=1e-5)       # the sun at 40.0 included, not 1.0
    darken = _IdentityPipe(scale=0.5)
    out = _with_pipe(tmp_path, darken).generate(GenerateRequest(source=source, prompt="an overcast sky"))
    sun = float(out[4, 4].max())
    assert 1.5 < sun < 40.0, sun    # scaled with what the model did to it, never clipped at display white
    assert np.all(out[30:, 30:] < source[30:, 30:])


def test_structure_sets_the_strength_and_every_run_has_a_step(tmp_path: Path) -> None:
    pipe = _IdentityPipe()
    generator = _with_pipe(tmp_path, pipe, steps=4)
    for structure in (1, 5, 9):
        generator.generate(GenerateRequest(source=_scene(128, 64), prompt="a purple sky", structure=structure,
                                           seed=3))
    strengths = [call["strength"] for call in pipe.calls]
    assert strengths == pytest.approx([0.9, 0.55, 0.2])
    assert strength_for_structure(9) < strength_for_structure(1)
    assert all(int(call["num_inference_steps"] * call["strength"]) >= 1 for call in pipe.calls)
    assert all(call["prompt"] == "a purple sky" and call["output_type"] == "np" for call in pipe.calls)


def test_the_working_resolution_keeps_the_aspect_and_fits_the_unet(tmp_path: Path) -> None:
    generator = _with_pipe(tmp_path, _IdentityPipe())
    assert generator._working_size(_IdentityPipe(), 1920, 1080) == (896, 512)
    assert generator._working_size(_IdentityPipe(), 128, 64) == (128, 64)    # never upscaled


def test_restore_highlights_changes_nothing_below_display_white() -> None:
    colour = Colour()
    source = _scene(sun=40.0)
    seen = decode_from_model(colour, np.clip(encode_for_model(colour, source), 0, 1))
    generated = seen * np.float32(0.7)
    restored = restore_highlights(source, seen, generated)
    below = source.max(axis=-1) <= 1.0
    assert np.array_equal(restored[below], generated[below])
    assert np.allclose(restored[4, 4], 0.7 + (40.0 - 1.0) * 0.7, rtol=1e-3)


# --- the tiny diffusion model ---------------------------------------------------------------------

def record_loads(monkeypatch: pytest.MonkeyPatch, owner: Any) -> list[tuple[Any, str | None]]:
    """Each ``owner.from_pretrained`` call's (local_files_only, HF_HUB_OFFLINE at that moment),
    with HF_HUB_OFFLINE unset beforehand: the backend itself must make the load offline."""
    loads: list[tuple[Any, str | None]] = []
    original = owner.from_pretrained

    def recording_load(*args: Any, **kwargs: Any) -> Any:
        loads.append((kwargs.get("local_files_only"), os.environ.get("HF_HUB_OFFLINE")))
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, "from_pretrained", recording_load)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    return loads


@needs_diffusers
def test_the_full_path_runs_on_cpu_offline_in_seconds(tiny_model: dict[str, str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import diffusers

    loads = record_loads(monkeypatch, diffusers.AutoPipelineForImage2Image)
    started = time.perf_counter()
    generator = _tiny(tiny_model)
    out = generator.generate(GenerateRequest(source=_scene(), prompt="a purple sky over the mountains", seed=1))
    seconds = time.perf_counter() - started
    assert loads == [(True, "1")] and "HF_HUB_OFFLINE" not in os.environ   # offline while loading, then as before
    assert type(generator.pipeline()).__name__ == "StableDiffusionImg2ImgPipeline"
    assert out.shape == (SIZE[1], SIZE[0], 3) and out.dtype == np.float32 and np.isfinite(out).all()
    assert seconds < 30, f"load + generate took {seconds:.1f} s"
    assert generator.model == "tiny-sd" and generator.fingerprint.startswith("diffusers:tiny-sd|")


@needs_diffusers
def test_structure_9_keeps_more_of_the_source_than_structure_1(tiny_model: dict[str, str]) -> None:
    generator = _tiny(tiny_model)
    source = _scene()
    for seed in (0, 1):
        tight = _correlation(generator.generate(GenerateRequest(source=source, prompt="a purple sky", structure=9,
                                                                seed=seed)), source)
        free = _correlation(generator.generate(GenerateRequest(source=source, prompt="a purple sky", structure=1,
                                                               seed=seed)), source)
        assert tight > 0.6 and tight > free + 0.3, (seed, tight, free)


@needs_diffusers
def test_the_same_seed_makes_the_same_keyframe_bit_for_bit(tiny_model: dict[str, str]) -> None:
    source = _scene()
    request = GenerateRequest(source=source, prompt="a purple sky", structure=5, seed=7)
    generator = _tiny(tiny_model)
    first = generator.generate(request)
    assert np.array_equal(first, generator.generate(request))
    assert np.array_equal(first, _tiny(tiny_model).generate(request))   # a fresh load of the same files
    other_seed = generator.generate(GenerateRequest(source=source, prompt="a purple sky", structure=5, seed=8))
    other_prompt = generator.generate(GenerateRequest(source=source, prompt="a golden sky", structure=5, seed=7))
    assert not np.array_equal(first, other_seed) and np.abs(first - other_seed).mean() > 1e-3
    assert not np.array_equal(first, other_prompt)


@needs_diffusers
def test_a_canny_controlnet_is_used_when_configured(tiny_model: dict[str, str]) -> None:
    generator = _tiny(tiny_model, controlnet=tiny_model["controlnet"])
    request = GenerateRequest(source=_scene(), prompt="a purple sky", structure=7, seed=2)
    out = generator.generate(request)
    assert type(generator.pipeline()).__name__ == "StableDiffusionControlNetImg2ImgPipeline"
    assert out.shape == (SIZE[1], SIZE[0], 3) and np.isfinite(out).all()
    assert np.array_equal(out, generator.generate(request))
    assert generator.model == "tiny-sd + tiny-controlnet"


@needs_diffusers
def test_a_broken_single_file_checkpoint_is_an_input_error_not_a_download(tmp_path: Path) -> None:
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(b"not a checkpoint")
    generator = get_generator("diffusers", model=str(checkpoint))
    with pytest.raises(InputError, match="RETAKE_MODEL_CONFIG"):
        generator.generate(GenerateRequest(source=_scene(), prompt="a purple sky"))


# --- keyframe files -----------------------------------------------------------------------------------

def _job(tmp_path: Path, prompt: str = "a purple sky over the mountains", seed: int = 0) -> Job:
    return parse_job({
        "plate": {"path": str(tmp_path / "plate" / "plate.####.exr"), "first": 1001, "last": 1020},
        "keyframes": [{"frame": 1001, "image": str(tmp_path / "painted.1001.exr")},
                      {"frame": 1010, "prompt": prompt}],
        "controls": {"structure": 6, "motion": 4},
        "transform": {"name": "propagate"},
        "output": {"path": str(tmp_path / "out" / "sh010_retake.####.exr")},
        "seed": seed,
    })


def _reader(calls: list[int]) -> Any:
    def read_source(frame: int) -> np.ndarray:
        calls.append(frame)
        return _scene() * np.float32(1.0 + (frame - 1001) / 100.0)
    return read_source


def _run(tmp_path: Path, job: Job, generator: Generator | None, **options: Any) -> tuple[list[tuple[int, str]],
                                                                                          list[str]]:
    warnings: list[str] = []
    done = generate_missing_keyframes(job, Colour(), _reader([]), SIZE, str(tmp_path / "out"), "cpu", generator,
                                      on_warning=warnings.append, **options)
    return done, warnings


@needs_diffusers
def test_a_prompt_keyframe_becomes_an_acescg_exr_with_its_recipe(tmp_path: Path, tiny_model: dict[str, str]) -> None:
    job = _job(tmp_path, seed=11)
    assert needs_generation(job)
    generator = _tiny(tiny_model)
    done, warnings = _run(tmp_path, job, generator)
    path = str(tmp_path / "out" / "keyframes" / "sh010_retake.1010.exr")
    assert done == [(1010, path)] and keyframe_path(job, str(tmp_path / "out"), 1010) == path and not warnings
    attributes = read_exr_attributes(path)
    assert attributes["retake/prompt"] == "a purple sky over the mountains"
    assert attributes["retake/seed"] == 11 and attributes["retake/frame"] == 1010
    assert attributes["retake/backend"] == "diffusers" and attributes["retake/model"] == "tiny-sd"
    assert attributes["retake/structure"] == 6 and attributes["retake/motion"] == 4
    assert attributes["chromaticities"].close_to(AP1) and "acesImageContainerFlag" not in attributes
    assert not [name for name in os.listdir(tmp_path / "out" / "keyframes") if name.startswith(".")]  # no temps
    # What propagation reads back (colour space from the file) is what the model made.
    expected = generator.generate(GenerateRequest(source=_reader([])(1010), prompt=job.keyframes[1].prompt or "",
                                                  structure=6, motion=4, seed=11, frame=1010))
    loaded = load_keyframe_image(Keyframe(frame=1010, image=path), 1, Colour(), SIZE)
    assert np.allclose(loaded, expected, rtol=2e-3, atol=1e-3)


def test_a_second_run_reuses_the_file(tmp_path: Path) -> None:
    job = _job(tmp_path)
    generator = Tint()
    first, _ = _run(tmp_path, job, generator)
    written = Path(first[0][1]).read_bytes()
    again, warnings = _run(tmp_path, job, generator)
    assert again == first and generator.calls == 1 and not warnings
    assert Path(first[0][1]).read_bytes() == written


def test_an_artists_edit_is_never_overwritten(tmp_path: Path) -> None:
    job = _job(tmp_path)
    generator = Tint()
    [(frame, path)] = _run(tmp_path, job, generator)[0]
    attributes = read_exr_attributes(path)
    recipe = {k: v for k, v in attributes.items() if k.startswith("retake/") and k != "retake/frame"}
    # A touch-up saved with Retake's header carried over: kept, silently.
    write_exr(path, _scene() * np.float32(0.3), chromaticities=AP1, aces_container=False, frame=frame,
              metadata=recipe)
    touched = Path(path).read_bytes()
    done, warnings = _run(tmp_path, job, generator, replace_unedited=True)
    assert done == [(frame, path)] and not warnings and Path(path).read_bytes() == touched
    # A touch-up from a tool that drops the header: kept, with a warning that says how to regenerate.
    write_exr(path, _scene() * np.float32(0.2), chromaticities=None, aces_container=False)
    painted = Path(path).read_bytes()
    done, warnings = _run(tmp_path, job, generator, replace_unedited=True)
    assert done == [(frame, path)] and Path(path).read_bytes() == painted
    assert len(warnings) == 1 and "not written by Retake" in warnings[0] and "delete it" in warnings[0]
    assert generator.calls == 1


def test_a_changed_prompt_keeps_the_file_unless_it_is_untouched_and_asked_for(tmp_path: Path) -> None:
    generator = Tint()
    [(frame, path)] = _run(tmp_path, _job(tmp_path), generator)[0]
    written = Path(path).read_bytes()
    moonlit = _job(tmp_path, prompt="a moonlit night over the mountains")
    done, warnings = _run(tmp_path, moonlit, generator)
    assert done == [(frame, path)] and Path(path).read_bytes() == written and generator.calls == 1
    assert len(warnings) == 1 and "another prompt" in warnings[0] and "delete it" in warnings[0]
    done, warnings = _run(tmp_path, moonlit, generator, replace_unedited=True)
    assert generator.calls == 2 and not warnings
    assert read_exr_attributes(path)["retake/prompt"] == "a moonlit night over the mountains"
    # Edited after generation, then the prompt changes: kept even when replacing is allowed.
    attributes = read_exr_attributes(path)
    recipe = {k: v for k, v in attributes.items() if k.startswith("retake/") and k != "retake/frame"}
    write_exr(path, _scene() * np.float32(0.3), chromaticities=AP1, aces_container=False, frame=frame,
              metadata=recipe)
    edited = Path(path).read_bytes()
    done, warnings = _run(tmp_path, _job(tmp_path, prompt="golden hour over the mountains"), generator,
                          replace_unedited=True)
    assert Path(path).read_bytes() == edited and generator.calls == 2 and "has been edited" in warnings[0]


def test_without_a_model_an_existing_keyframe_is_used_and_a_missing_one_is_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODEL_ENV, raising=False)
    monkeypatch.delenv(base.GENERATOR_ENV, raising=False)
    job = _job(tmp_path)
    with pytest.raises(InputError, match="RETAKE_MODEL_DIR"):
        _run(tmp_path, job, None)
    [(frame, path)] = _run(tmp_path, job, Tint())[0]
    done, warnings = _run(tmp_path, job, None)     # a render node without the model
    assert done == [(frame, path)] and "used as it is" in warnings[0] and "RETAKE_MODEL_DIR" in warnings[0]


def test_keyframes_with_images_are_left_alone_and_prompts_are_linted(tmp_path: Path) -> None:
    job = _job(tmp_path, prompt="change the sky to purple")
    reads: list[int] = []
    warnings: list[str] = []
    generator = Tint()
    done = generate_missing_keyframes(job, Colour(), _reader(reads), SIZE, str(tmp_path / "out"), "cpu", generator,
                                      on_warning=warnings.append)
    assert [frame for frame, _ in done] == [1010] and reads == [1010] and generator.calls == 1
    assert len(warnings) == 1 and "not a target state" in warnings[0] and "a purple sky" in warnings[0]
    no_keys = Job(plate=job.plate, output=job.output, transform=job.transform)
    assert generate_missing_keyframes(no_keys, Colour(), _reader(reads), SIZE, str(tmp_path / "out"), "cpu",
                                      generator) == []


def test_a_reference_the_backend_cannot_use_is_named_in_a_warning(tmp_path: Path) -> None:
    reference = tmp_path / "hero.exr"
    write_exr(str(reference), _scene(32, 48), chromaticities=AP1, aces_container=False)
    job = parse_job({**_job(tmp_path).to_dict(),
                     "keyframes": [{"frame": 1010, "prompt": "a hero in a red coat", "reference": str(reference)}]})
    done, warnings = _run(tmp_path, job, Tint())
    assert len(done) == 1 and any("reference" in w and "hero.exr" in w for w in warnings)
    assert read_exr_attributes(done[0][1])["retake/reference"] == str(reference)


def test_a_cancel_stops_before_the_next_keyframe(tmp_path: Path) -> None:
    generator = Tint()
    with pytest.raises(CancelledError):
        _run(tmp_path, _job(tmp_path), generator, cancelled=lambda: True)
    assert generator.calls == 0
