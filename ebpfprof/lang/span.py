"""The one span type of every language pass: offsets into a source text, and its caret line."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Span"]


@dataclass(frozen=True)
class Span:
    """Characters ``start`` (inclusive) to ``end`` (exclusive) of a source text, 0-based.

    Columns shown to users are 1-based (``column``).
    """

    start: int
    end: int

    @property
    def column(self) -> int:
        return self.start + 1

    def to(self, other: "Span") -> "Span":
        """From this span's start to the end of ``other``."""
        return Span(self.start, max(self.end, other.end))

    def caret(self, text: str, indent: int = 4) -> str:
        """``text`` and a ``^~~~`` line under the span (at least one character wide)."""
        pad = " " * indent
        end = max(self.end, self.start + 1)
        width = min(end, len(text) + 1) - self.start
        return f"{pad}{text}\n{pad}{' ' * self.start}^{'~' * max(width - 1, 0)}"
