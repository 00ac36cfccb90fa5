"""Reference images: an IP-Adapter on the diffusers generator, and one look across a shot's keyframes.

The adapter is built here like the model in tests/test_generate.py: a tiny CLIP image
encoder (``CLIPVisionModelWithProjection`` from a config, random weights, saved with
``save_pretrained``) and a plain IP-Adapter state dict whose keys and shapes are what
diffusers' ``load_ip_adapter`` expects for the tiny UNet (``image_proj.proj``/``norm``,
``ip_adapter.<n>.to_k_ip``/``to_v_ip`` for each cross-attention), with random weights
strong enough to move the keyframe, saved as one ``.safetensors`` file beside
``image_encoder/`` (the adapter's own layout). The no-network guard of
tests/test_generate.py is armed here too.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.colour import Colour
from engine.errors import InputError
from engine.generate import GenerateRequest, Generator, get_generator
from engine.generate.diffusers_backend import IP_ADAPTER_ENCODER_ENV, IP_ADAPTER_ENV, DiffusersGenerator
from engine.generate.keyframes import generate_missing_keyframes
from engine.io.aces_exr import read_exr_attributes, write_exr
from engine.io.header import AP1
from engine.job import Job, parse_job
from tests.test_generate import (  # noqa: F401 - fixtures
    HAVE_DIFFUSERS,
    SIZE,
    STEPS,
    _NETWORK_ATTEMPTS,
    _scene,
    needs_diffusers,
    no_network,
    no_network_in_this_test,
    tiny_model,
)

ENCODER_DIM = 32   # the tiny CLIP image encoder's projection_dim


def test_the_network_guard_is_armed_here_too() -> None:
    with pytest.raises(RuntimeError, match="network"):
        socket.create_connection(("127.0.0.1", 9), timeout=0.1)
    _NETWORK_ATTEMPTS.pop()  # that one was ours


# --- the tiny adapter ---------------------------------------------------------------------

def _adapter_tensors(unet: Any, image_dim: int, seed: int, cross_attention_dim: int | None = None) -> dict[str, Any]:
    """A plain IP-Adapter's flattened state dict for ``unet``: "image_proj.*" and "ip_adapter.<n>.to_k_ip/to_v_ip".

    ``load_ip_adapter`` numbers the cross-attentions (attn2) 1, 3, 5, ... in the order of
    ``unet.attn_processors``; to_k_ip/to_v_ip map the 4 image tokens (cross_attention_dim
    wide) to the attention's width.
    """
    import torch

    cross = cross_attention_dim or unet.config.cross_attention_dim
    generator = torch.Generator().manual_seed(seed)

    def noise(*shape: int, std: float) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * std

    tensors = {
        "image_proj.proj.weight": noise(4 * cross, image_dim, std=1.0 / image_dim ** 0.5),
        "image_proj.proj.bias": noise(4 * cross, std=0.1),
        "image_proj.norm.weight": 1.0 + noise(cross, std=0.1),
        "image_proj.norm.bias": noise(cross, std=0.1),
    }
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        width = unet.get_submodule(name.removesuffix(".processor")).to_k.out_features
        # Stronger than an initialisation (std 1/sqrt(fan_in)), so the reference visibly matters.
        tensors[f"ip_adapter.{key_id}.to_k_ip.weight"] = noise(width, cross, std=1.0)
        tensors[f"ip_adapter.{key_id}.to_v_ip.weight"] = noise(width, cross, std=1.0)
        key_id += 2
    return tensors


@pytest.fixture(scope="module")
def tiny_adapter(tiny_model: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """{"adapter": weights file, "folder": its folder (with image_encoder/), "encoder": image_encoder/,
    "wide": an adapter for 64-wide cross-attention (the wrong UNet)}."""
    if not HAVE_DIFFUSERS:
        pytest.skip("diffusers/transformers are not installed (pip install diffusers transformers)")
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    root = tmp_path_factory.mktemp("tiny_ip_adapter")
    torch.manual_seed(1)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2, image_size=32,
        patch_size=8, projection_dim=ENCODER_DIM))
    encoder.save_pretrained(str(root / "adapter" / "image_encoder"))
    unet = UNet2DConditionModel.from_pretrained(tiny_model["model"], subfolder="unet", local_files_only=True)
    save_file(_adapter_tensors(unet, ENCODER_DIM, seed=2), str(root / "adapter" / "ip-adapter_tiny.safetensors"))
    (root / "wide").mkdir()
    save_file(_adapter_tensors(unet, ENCODER_DIM, seed=2, cross_attention_dim=64),
              str(root / "wide" / "ip-adapter_wide.safetensors"))
    return {"adapter": str(root / "adapter" / "ip-adapter_tiny.safetensors"), "folder": str(root / "adapter"),
            "encoder": str(root / "adapter" / "image_encoder"),
            "wide": str(root / "wide" / "ip-adapter_wide.safetensors")}


def _tiny(tiny_model: dict[str, str], **options: Any) -> Generator:
    return get_generator("diffusers", model=tiny_model["model"], device="cpu", steps=STEPS, guidance=2.0, **options)


def _reference(kind: str) -> np.ndarray:
    """(h, w, 3) float32 ACEScg references of another size than the frames: "red" (a red coat), "stripes"."""
    colour = Colour()
    yy, xx = np.mgrid[0:48, 0:40] / np.float32(47)
    if kind == "red":
        rec709 = np.stack([0.8 - 0.3 * yy, 0.05 + 0.0 * xx, 0.04 + 0.1 * xx], axis=-1)
    else:
        stripes = (np.sin(xx * 40.0) > 0).astype(np.float32)
        rec709 = np.stack([0.1 + 0.2 * stripes, 0.3 + 0.5 * stripes, 0.9 - 0.6 * yy], axis=-1)
    return colour.to_working(rec709.astype(np.float32), "Linear Rec.709 (sRGB)")


# --- options and paths, without a model ------------------------------------------------------

@pytest.fixture()
def model_folder(tmp_path: Path) -> str:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model_index.json").write_text("{}", encoding="utf-8")
    return str(tmp_path / "model")


def _weights(folder: Path, name: str = "ip-adapter.safetensors", encoder: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"weights")
    if encoder:
        (folder / "image_encoder").mkdir(exist_ok=True)
        (folder / "image_encoder" / "config.json").write_text("{}", encoding="utf-8")
    return folder / name


def test_an_adapter_path_is_a_weights_file_or_a_folder_with_one(model_folder: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(IP_ADAPTER_ENV, raising=False)
    monkeypatch.delenv(IP_ADAPTER_ENCODER_ENV, raising=False)
    plain = DiffusersGenerator(model_folder)
    assert plain.supports_reference is False and plain.ip_adapter_path is None
    weights = _weights(tmp_path / "ip")
    by_file = DiffusersGenerator(model_folder, ip_adapter=str(weights))
    by_folder = DiffusersGenerator(model_folder, ip_adapter=str(tmp_path / "ip"))
    assert by_file.ip_adapter_path == by_folder.ip_adapter_path == str(weights)
    assert by_file.image_encoder_path == str(tmp_path / "ip" / "image_encoder")        # inside the weights' folder
    assert by_file.supports_reference is True and DiffusersGenerator.supports_reference is False
    assert by_file.model == "model + ip-adapter"
    assert "ip_adapter=" in by_file.fingerprint and "reference_scale=0.6" in by_file.fingerprint
    # Without an adapter the fingerprint is what it always was: keyframes made so stay current.
    assert plain.fingerprint.endswith("|steps=30|guidance=7.5|short_side=512|dtype=float32")
    # image_encoder/ beside the weights' folder (weights/ip.bin, image_encoder/), and from the environment.
    beside = _weights(tmp_path / "studio" / "weights", "ip.bin", encoder=False)
    (tmp_path / "studio" / "image_encoder").mkdir()
    (tmp_path / "studio" / "image_encoder" / "config.json").write_text("{}", encoding="utf-8")
    monkeypatch.setenv(IP_ADAPTER_ENV, str(beside))
    from_env = DiffusersGenerator(model_folder)
    assert from_env.ip_adapter_path == str(beside)
    assert from_env.image_encoder_path == str(tmp_path / "studio" / "image_encoder")
    monkeypatch.setenv(IP_ADAPTER_ENCODER_ENV, str(tmp_path / "ip" / "image_encoder"))
    assert DiffusersGenerator(model_folder).image_encoder_path == str(tmp_path / "ip" / "image_encoder")
    assert DiffusersGenerator(model_folder, reference_scale=0.25).fingerprint.endswith("reference_scale=0.25")


def test_bad_adapter_paths_say_what_to_set(model_folder: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(IP_ADAPTER_ENCODER_ENV, raising=False)
    (tmp_path / "empty").mkdir()
    _weights(tmp_path / "two", "a.safetensors")
    _weights(tmp_path / "two", "b.bin")
    cases = {
        "missing": (str(tmp_path / "missing.safetensors"), "no IP-Adapter weights at this path"),
        "not weights": (str(_weights(tmp_path / "odd", "adapter.txt")), "not a .safetensors or .bin"),
        "empty folder": (str(tmp_path / "empty"), "holds no weights file"),
        "two files": (str(tmp_path / "two"), "holds 2 weights files (a.safetensors, b.bin)"),
    }
    for name, (path, message) in cases.items():
        with pytest.raises(InputError) as error:
            DiffusersGenerator(model_folder, ip_adapter=path)
        assert message in str(error.value) and IP_ADAPTER_ENV in str(error.value), (name, str(error.value))
    monkeypatch.setenv(IP_ADAPTER_ENV, str(tmp_path / "missing"))
    with pytest.raises(InputError, match=IP_ADAPTER_ENV):
        DiffusersGenerator(model_folder)
    monkeypatch.delenv(IP_ADAPTER_ENV)
    without_encoder = _weights(tmp_path / "alone", encoder=False)
    with pytest.raises(InputError, match=IP_ADAPTER_ENCODER_ENV) as error:
        DiffusersGenerator(model_folder, ip_adapter=str(without_encoder))
    assert "no CLIP image encoder" in str(error.value)
    with pytest.raises(InputError, match=IP_ADAPTER_ENCODER_ENV):
        DiffusersGenerator(model_folder, ip_adapter=str(_weights(tmp_path / "ip")),
                           image_encoder=str(tmp_path / "nowhere"))
    for scale in (-0.1, 1.5, float("nan"), True):
        with pytest.raises(InputError, match="reference_scale"):
            DiffusersGenerator(model_folder, ip_adapter=str(tmp_path / "ip"), reference_scale=scale)


# --- the tiny adapter on the tiny model --------------------------------------------------------

@needs_diffusers
def test_a_reference_steers_the_keyframe_repeatably(tiny_model: dict[str, str], tiny_adapter: dict[str, str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    generator = _tiny(tiny_model, ip_adapter=tiny_adapter["folder"])
    assert generator.supports_reference and generator.model == "tiny-sd + ip-adapter_tiny"
    source = _scene()
    red, stripes = _reference("red"), _reference("stripes")

    def make(reference: np.ndarray | None, seed: int = 4) -> np.ndarray:
        return generator.generate(GenerateRequest(source=source, prompt="a hero in a coat", reference=reference,
                                                  structure=5, seed=seed))

    none, with_red, with_stripes = make(None), make(red), make(stripes)
    pipe = generator.pipeline()
    assert type(pipe.image_encoder).__name__ == "CLIPVisionModelWithProjection"
    assert pipe.feature_extractor.crop_size == {"height": 32, "width": 32}   # built for the encoder's input size
    assert "HF_HUB_OFFLINE" not in os.environ
    for out in (none, with_red, with_stripes):
        assert out.shape == source.shape and out.dtype == np.float32 and np.isfinite(out).all()
    by_red, red_vs_stripes = np.abs(with_red - none).mean(), np.abs(with_red - with_stripes).mean()
    assert by_red > 0.02 and np.abs(with_stripes - none).mean() > 0.02, (by_red, np.abs(with_stripes - none).mean())
    assert red_vs_stripes > 0.02, red_vs_stripes
    assert np.array_equal(with_red, make(red))                                          # same reference and seed
    assert np.array_equal(with_red, _tiny(tiny_model, ip_adapter=tiny_adapter["adapter"]).generate(
        GenerateRequest(source=source, prompt="a hero in a coat", reference=red, structure=5, seed=4)))
    # A weaker reference moves the keyframe less.
    weak = _tiny(tiny_model, ip_adapter=tiny_adapter["adapter"], reference_scale=0.1).generate(
        GenerateRequest(source=source, prompt="a hero in a coat", reference=red, structure=5, seed=4))
    assert 0 < np.abs(weak - none).mean() < by_red


@needs_diffusers
def test_with_an_adapter_and_no_reference_the_keyframe_is_the_plain_models(tiny_model: dict[str, str],
                                                                            tiny_adapter: dict[str, str]) -> None:
    request = GenerateRequest(source=_scene(), prompt="a purple sky over the mountains", structure=4, seed=9)
    plain = _tiny(tiny_model).generate(request)
    adapted = _tiny(tiny_model, ip_adapter=tiny_adapter["adapter"])
    assert np.array_equal(adapted.generate(request), plain)
    # And again after a keyframe with a reference on the same pipeline (the scale is set per call).
    red = GenerateRequest(source=request.source, prompt=request.prompt, reference=_reference("red"),
                          structure=4, seed=9)
    assert not np.array_equal(adapted.generate(red), plain)
    assert np.array_equal(adapted.generate(request), plain)


@needs_diffusers
def test_adapter_files_that_do_not_load_say_which_file(tiny_model: dict[str, str], tiny_adapter: dict[str, str],
                                                       tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    request = GenerateRequest(source=_scene(), prompt="a purple sky", reference=_reference("red"))
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not safetensors at all")
    no_keys = tmp_path / "no_keys.safetensors"
    save_file({"other.weight": load_file(tiny_adapter["adapter"])["image_proj.proj.weight"]}, str(no_keys))
    pickled = tmp_path / "pickled.bin"
    pickled.write_bytes(b"not a torch file")
    # Garbage, a safetensors file of something else, garbage .bin, an adapter for another UNet.
    for weights in (broken, no_keys, pickled, Path(tiny_adapter["wide"])):
        generator = _tiny(tiny_model, ip_adapter=str(weights), image_encoder=tiny_adapter["encoder"])
        with pytest.raises(InputError, match="cannot load the IP-Adapter weights") as error:
            generator.generate(request)
        assert str(weights) in str(error.value) and IP_ADAPTER_ENV in str(error.value)
    # An encoder whose embeddings are not what the adapter projects.
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2, image_size=32,
        patch_size=8, projection_dim=16)).save_pretrained(str(tmp_path / "narrow_encoder"))
    generator = _tiny(tiny_model, ip_adapter=tiny_adapter["adapter"], image_encoder=str(tmp_path / "narrow_encoder"))
    with pytest.raises(InputError, match="32-wide image embeddings but the image encoder makes 16-wide") as error:
        generator.generate(request)
    assert IP_ADAPTER_ENCODER_ENV in str(error.value)
    (tmp_path / "empty_encoder").mkdir()
    (tmp_path / "empty_encoder" / "config.json").write_text("{}", encoding="utf-8")
    generator = _tiny(tiny_model, ip_adapter=tiny_adapter["adapter"], image_encoder=str(tmp_path / "empty_encoder"))
    with pytest.raises(InputError, match="image encoder") as error:
        generator.generate(request)
    assert str(tmp_path / "empty_encoder") in str(error.value)


# --- one look across the keyframes --------------------------------------------------------------

class Looks(Generator):
    """A cheap backend that uses references: the frame lifted by the reference's mean; records the references."""

    name = "looks"
    supports_reference = True

    def __init__(self) -> None:
        self.references: dict[int, np.ndarray | None] = {}

    def generate(self, request: GenerateRequest) -> np.ndarray:
        self.references[request.frame] = request.reference
        lift = 0.1 if request.reference is None else float(request.reference.mean())
        return (request.source * np.float32(0.5) + np.float32(lift)).astype(np.float32)


def _shot(tmp_path: Path, keyframes: list[dict[str, Any]], seed: int = 0) -> Job:
    return parse_job({
        "plate": {"path": str(tmp_path / "plate" / "plate.####.exr"), "first": 1001, "last": 1040},
        "keyframes": keyframes, "transform": {"name": "propagate"}, "seed": seed,
        "output": {"path": str(tmp_path / "out" / "sh020_retake.####.exr")},
    })


def _run(tmp_path: Path, job: Job, generator: Generator, **options: Any) -> tuple[list[tuple[int, str]], list[str]]:
    warnings: list[str] = []

    def read_source(frame: int) -> np.ndarray:
        return _scene() * np.float32(1.0 + (frame - 1001) / 100.0)

    done = generate_missing_keyframes(job, Colour(), read_source, SIZE, str(tmp_path / "out"), "cpu", generator,
                                      on_warning=warnings.append, **options)
    return done, warnings


def _pixels(path: str) -> np.ndarray:
    from engine.generate.keyframes import _read_still

    return _read_still(path, Colour())


def test_the_first_prompt_keyframe_sets_the_look_of_the_others(tmp_path: Path) -> None:
    hero = tmp_path / "hero.exr"
    write_exr(str(hero), _reference("red"), chromaticities=AP1, aces_container=False)
    job = _shot(tmp_path, [{"frame": 1030, "prompt": "a moonlit night over the mountains"},
                           {"frame": 1001, "prompt": "a purple sky over the mountains"},
                           {"frame": 1010, "prompt": "a golden sky over the mountains"},
                           {"frame": 1020, "prompt": "a hero in a red coat", "reference": str(hero)}])
    generator = Looks()
    done, warnings = _run(tmp_path, job, generator)
    assert [frame for frame, _ in done] == [1001, 1010, 1020, 1030] and not warnings
    paths = dict(done)
    first = _pixels(paths[1001])
    assert generator.references[1001] is None
    assert np.array_equal(generator.references[1010], first) and np.array_equal(generator.references[1030], first)
    assert generator.references[1020] is not None and generator.references[1020].shape == (48, 40, 3)  # its own
    attributes = {frame: read_exr_attributes(path) for frame, path in done}
    assert "retake/reference" not in attributes[1001]
    assert attributes[1010]["retake/reference"] == "keyframe 1001"
    assert attributes[1030]["retake/reference"] == "keyframe 1001"
    assert attributes[1020]["retake/reference"] == str(hero)
    # A second run reads the first keyframe from its file and finds every stamp current.
    written = {frame: Path(path).read_bytes() for frame, path in done}
    again = Looks()
    assert _run(tmp_path, job, again) == (done, []) and again.references == {}
    assert {frame: Path(path).read_bytes() for frame, path in done} == written
    # The first keyframe touched up (header kept): the later ones were made from another look.
    recipe = {k: v for k, v in attributes[1001].items() if k.startswith("retake/") and k != "retake/frame"}
    write_exr(paths[1001], _scene() * np.float32(0.3), chromaticities=AP1, aces_container=False, frame=1001,
              metadata=recipe)
    done, warnings = _run(tmp_path, job, Looks())
    assert len(warnings) == 2 and all("reference" in w and "delete it" in w for w in warnings)
    assert {frame for frame, _ in done} == {1001, 1010, 1020, 1030}
    regenerated = Looks()
    _run(tmp_path, job, regenerated, replace_unedited=True)
    assert sorted(regenerated.references) == [1010, 1030]
    assert np.array_equal(regenerated.references[1010], _pixels(paths[1001]))


def test_a_backend_without_references_gets_no_shared_look(tmp_path: Path) -> None:
    from tests.test_generate import Tint

    job = _shot(tmp_path, [{"frame": 1001, "prompt": "a purple sky over the mountains"},
                           {"frame": 1010, "prompt": "a golden sky over the mountains"}])
    done, warnings = _run(tmp_path, job, Tint())
    assert not warnings and all("retake/reference" not in read_exr_attributes(path) for _, path in done)


@needs_diffusers
def test_prompt_keyframes_share_a_look_through_the_tiny_adapter(tiny_model: dict[str, str],
                                                                 tiny_adapter: dict[str, str],
                                                                 tmp_path: Path) -> None:
    job = _shot(tmp_path, [{"frame": 1001, "prompt": "a purple sky over the mountains"},
                           {"frame": 1010, "prompt": "a purple sky over the mountains"}], seed=3)
    generator = _tiny(tiny_model, ip_adapter=tiny_adapter["adapter"])
    done, warnings = _run(tmp_path, job, generator)
    assert not warnings and [frame for frame, _ in done] == [1001, 1010]
    attributes = read_exr_attributes(done[1][1])
    assert attributes["retake/reference"] == "keyframe 1001"
    assert attributes["retake/model"] == "tiny-sd + ip-adapter_tiny"
    # What the second keyframe is: the model's output with the first keyframe as its reference.
    source = _scene() * np.float32(1.09)
    expected = generator.generate(GenerateRequest(source=source, prompt="a purple sky over the mountains",
                                                  reference=_pixels(done[0][1]), seed=3, frame=1010))
    alone = generator.generate(GenerateRequest(source=source, prompt="a purple sky over the mountains", seed=3,
                                               frame=1010))
    written = _pixels(done[1][1])
    assert np.abs(written - expected).max() < 1e-3 and np.abs(written - alone).mean() > 2e-2   # half floats
    assert _run(tmp_path, job, generator) == (done, [])
