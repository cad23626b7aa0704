"""Errors a user can meet, each one clear line (plus an optional caret or hint) and an exit code.

Library code raises these; only the CLI prints them and exits. Nothing here calls ``sys.exit``.
"""
from __future__ import annotations

from typing import Iterable

__all__ = [
    "EbpfprofError", "UsageError", "SelectorError", "KernelError", "PermissionProblem",
    "MissingDependency", "ScriptError", "close_matches",
]


class EbpfprofError(Exception):
    """Base of every user-facing error.

    ``message`` is the one line printed after ``ebpfprof: error: ``; ``detail`` (optional) is
    printed below it as is (a caret line, a list of fields); ``hint`` is a last line of advice.
    """

    exit_code = 1

    def __init__(self, message: str, *, detail: str = "", hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.hint = hint

    def format(self) -> str:
        lines = [f"ebpfprof: error: {self.message}"]
        if self.detail:
            lines.append(self.detail.rstrip("\n"))
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)


class UsageError(EbpfprofError):
    """A bad option value or command line shape (exit 2, like click's usage errors)."""

    exit_code = 2


class SelectorError(UsageError):
    """An -e selector (or its filter) that cannot be parsed or resolved; exit 2."""


class KernelError(EbpfprofError):
    """The kernel refused or lacks something we need (kprobes, BPF load, attach)."""


class PermissionProblem(EbpfprofError):
    """Not root and without CAP_BPF+CAP_PERFMON."""


class MissingDependency(EbpfprofError):
    """A system package is missing (BCC, kernel headers, libtraceevent)."""


class ScriptError(EbpfprofError):
    """The user's module cannot be found or loaded (its own traceback is printed before)."""


def close_matches(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The candidates that look like ``word`` (for "did you mean" hints)."""
    import difflib  # only on an error path: kept off the start-up path

    return difflib.get_close_matches(word, list(candidates), n=n, cutoff=0.6)
