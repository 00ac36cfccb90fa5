"""`retake install-nuke` / `retake install-resolve`: what they write, idempotently, and what they print."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main
from plugin.install import BEGIN, END, REPO
from tests.fakes.scenes import use_fakes


def test_install_nuke_adds_one_block_to_init_py_and_keeps_the_rest(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    init = tmp_path / "init.py"
    init.write_text("import nuke\nnuke.pluginAddPath('/studio/tools')\n")
    assert main(["install-nuke", "--dest", str(tmp_path)]) == 0
    assert main(["install-nuke", "--dest", str(tmp_path)]) == 0  # again: replaced, not doubled
    text = init.read_text()
    assert text.startswith("import nuke\nnuke.pluginAddPath('/studio/tools')\n")
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    assert f"nuke.pluginAddPath({str(REPO / 'nuke_gizmos')!r})" in text
    assert f"os.environ.setdefault('RETAKE_HOME', {str(REPO)!r})" in text
    out = capsys.readouterr().out
    assert f"append Retake's block to {init}" in out and f"update {init}" in out and "Tab" in out


def test_the_installed_block_makes_nuke_find_the_gizmo(tmp_path: Path) -> None:
    use_fakes()
    import nuke

    nuke._reset()
    assert main(["install-nuke", "--dest", str(tmp_path)]) == 0
    exec(compile((tmp_path / "init.py").read_text(), "init.py", "exec"), {})
    assert nuke.createNode("Retake").Class() == "Retake"


def test_dry_runs_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["install-nuke", "--dest", str(tmp_path / "nuke"), "--dry-run"]) == 0
    assert main(["install-resolve", "--dest", str(tmp_path / "resolve"), "--dry-run"]) == 0
    assert not any(tmp_path.iterdir())
    out = capsys.readouterr().out
    assert "would create" in out and str(tmp_path / "resolve" / "Retake.py") in out


def test_install_resolve_writes_a_launcher_that_runs_this_checkout(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["install-resolve", "--dest", str(tmp_path)]) == 0
    script = (tmp_path / "Retake.py").read_text()
    compile(script, "Retake.py", "exec")
    assert repr(str(REPO)) in script and "resolve_scripts" in script and "globals()" in script
    assert "Workspace > Scripts > Retake" in capsys.readouterr().out


def test_default_resolve_folder_is_the_per_user_scripts_folder_on_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    import plugin.install as install

    monkeypatch.setattr(install.sys, "platform", "linux")
    assert install.resolve_scripts_dir() == Path.home() / ".local/share/DaVinciResolve/Fusion/Scripts/Utility"
    assert install.nuke_dir() == Path.home() / ".nuke"
