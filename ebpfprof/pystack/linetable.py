"""A code object's ``co_linetable`` decoded: the source line (and position) of each
instruction, for CPython 3.11, 3.12 and 3.13 (one format: CPython's Objects/locations.md).

The table is a sequence of entries, each covering 1-8 code units::

    first byte: 1 cccc lll   (bit 7 set; c: the entry's kind, l: code units - 1)
    c = 0-9    short form:  1 more byte  -> same line, column c*8 + (b>>4 & 7), end column + (b & 15)
    c = 10-12  one-line:    2 bytes      -> line + (c - 10), column, end column
    c = 13     no column:   svarint      -> line + delta
    c = 14     long form:   svarint line delta, varint end-line delta, varint column+1, varint end-column+1
    c = 15     no location  (the line stays for the next entry, but this one has none)

varints are 6-bit chunks, least significant first, 0x40 meaning "more"; an svarint's bit 0 is
its sign. Lines start at ``co_firstlineno``.

    >>> def f(): return 1
    >>> LineTable(f.__code__.co_linetable, f.__code__.co_firstlineno).line(0) == f.__code__.co_firstlineno
    True
"""
from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator

__all__ = ["LineTable", "positions", "LinetableError"]

Position = tuple["int | None", "int | None", "int | None", "int | None"]   # line, end line, column, end column


class LinetableError(ValueError):
    """The bytes are not a well-formed location table."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise LinetableError("location table ends inside a varint")
        b = data[pos]
        pos += 1
        value |= (b & 0x3F) << shift
        shift += 6
        if not b & 0x40:
            return value, pos


def _svarint(data: bytes, pos: int) -> tuple[int, int]:
    value, pos = _varint(data, pos)
    return (-(value >> 1) if value & 1 else value >> 1), pos


def _entries(linetable: bytes, firstlineno: int) -> Iterator[tuple[int, Position]]:
    """(code units, position) per entry."""
    line = firstlineno
    pos, end = 0, len(linetable)
    while pos < end:
        first = linetable[pos]
        if not first & 0x80:
            raise LinetableError(f"byte {pos} of the location table does not start an entry")
        code, units = (first >> 3) & 0xF, (first & 7) + 1
        pos += 1
        if code == 15:
            yield units, (None, None, None, None)
        elif code == 14:
            delta, pos = _svarint(linetable, pos)
            end_delta, pos = _varint(linetable, pos)
            col, pos = _varint(linetable, pos)
            end_col, pos = _varint(linetable, pos)
            line += delta
            yield units, (line, line + end_delta, col - 1 if col else None, end_col - 1 if end_col else None)
        elif code == 13:
            delta, pos = _svarint(linetable, pos)
            line += delta
            yield units, (line, line, None, None)
        elif code >= 10:
            if pos + 2 > end:
                raise LinetableError("location table ends inside a one-line entry")
            line += code - 10
            yield units, (line, line, linetable[pos], linetable[pos + 1])
            pos += 2
        else:
            if pos >= end:
                raise LinetableError("location table ends inside a short entry")
            b = linetable[pos]
            pos += 1
            col = code * 8 + ((b >> 4) & 7)
            yield units, (line, line, col, col + (b & 15))


def positions(linetable: bytes, firstlineno: int) -> Iterator[Position]:
    """One (line, end_line, column, end_column) per code unit, like ``code.co_positions()``."""
    for units, position in _entries(linetable, firstlineno):
        for _ in range(units):
            yield position


class LineTable:
    """The line of each instruction of one code object, decoded once.

    ``line(lasti)`` takes an index in code units (``_PyInterpreterFrame_LASTI``); None for an
    instruction without a location or an index outside the code.
    """

    __slots__ = ("_ends", "_lines")

    def __init__(self, linetable: bytes, firstlineno: int) -> None:
        ends: list[int] = []
        lines: list[int | None] = []
        at = 0
        for units, (line, *_rest) in _entries(linetable, firstlineno):
            at += units
            if lines and lines[-1] == line:
                ends[-1] = at                  # merge runs of one line: fewer entries to bisect
            else:
                ends.append(at)
                lines.append(line)
        self._ends = ends
        self._lines = lines

    @property
    def units(self) -> int:
        """Code units the table covers."""
        return self._ends[-1] if self._ends else 0

    def line(self, lasti: int) -> int | None:
        if lasti < 0:
            return None
        i = bisect_right(self._ends, lasti)
        return self._lines[i] if i < len(self._lines) else None
