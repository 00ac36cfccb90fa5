"""The sub-command registry: engine modules and entry points both reach ``retake``."""
from __future__ import annotations

import argparse
from importlib import metadata

import pytest

from engine import commands
from engine.cli import build_parser, main


def _names(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    raise AssertionError("no sub-commands")


def test_built_in_commands_are_listed() -> None:
    assert {"run", "validate", "info", "schema", "demo"} <= _names(build_parser())


def test_entry_point_commands_are_added_and_a_broken_one_says_why(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    def register(sub: argparse._SubParsersAction) -> None:
        parser = sub.add_parser("hello", help="say hello")
        parser.set_defaults(func=lambda args: print("hello from a plugin") or 0)

    class Good:
        name = "hello"

        def load(self):  # noqa: ANN201 - mimics importlib.metadata.EntryPoint
            return register

    class Broken:
        name = "broken"

        def load(self):  # noqa: ANN201
            raise ImportError("No module named 'PySide6'")

    def fake_entry_points(group: str):  # noqa: ANN202
        assert group == commands.ENTRY_POINT_GROUP
        return [Good(), Broken()]

    monkeypatch.setattr(metadata, "entry_points", fake_entry_points)
    assert {"hello", "broken"} <= _names(build_parser())
    assert main(["hello"]) == 0
    assert "hello from a plugin" in capsys.readouterr().out
    assert main(["broken"]) == 1
    err = capsys.readouterr().err
    assert "'broken' command cannot load" in err and "PySide6" in err
