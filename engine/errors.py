"""Errors every layer raises, with the file, the frame and what to do.

Exit codes (CLI): 0 ok, 2 bad input the user can fix (``InputError``), 1 internal.
"""
from __future__ import annotations


class RetakeError(Exception):
    """Base of all Retake errors. Unexpected failures map to exit code 1."""

    exit_code: int = 1


class InputError(RetakeError):
    """Bad input the user can fix: a missing frame, a broken file, a bad job field.

    The message says what is wrong; ``path`` and ``frame`` say where; ``hint`` says
    what to do. ``str()`` joins them into one line for a terminal or a panel.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        frame: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.frame = frame
        self.hint = hint

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = str(self.path)
            if self.frame is not None:
                where += f" (frame {self.frame})"
            where += ": "
        elif self.frame is not None:
            where = f"frame {self.frame}: "
        text = where + self.message
        if self.hint:
            text += f" — {self.hint}"
        return text


class JobError(InputError):
    """A job spec field is wrong. ``path`` is the JSON path, e.g. ``$.controls.motion``."""


class CancelledError(RetakeError):
    """The user or the host cancelled the render; finished frames stay valid."""

    exit_code = 130
