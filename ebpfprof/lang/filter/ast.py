"""The filter language's tree, the source it came from, and the error every pass raises.

Every node carries the span of filter text it was parsed from, so any pass can point at the exact
characters it objects to. The tree is immutable: a pass returns new nodes, it never edits old ones.

    pid > 100 && !(comm == "sh")

    Or/And(terms=(Compare(FieldRef('pid'), '>', IntLiteral(100)),
                  Not(Compare(FieldRef('comm'), '==', StrLiteral(b'sh')))))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from ebpfprof.errors import SelectorError
from ebpfprof.lang.span import Span

__all__ = [
    "FilterError", "FilterSource", "Span",
    "FieldRef", "IntLiteral", "StrLiteral", "Compare", "Not", "And", "Or", "Expr",
    "INT_OPS", "STR_OPS", "COMPARE_OPS",
]

# Operators by operand type; '~' is a glob match, '&' a bit test.
INT_OPS = ("==", "!=", "<", "<=", ">", ">=", "&")
STR_OPS = ("==", "!=", "~")
COMPARE_OPS = ("==", "!=", "<=", ">=", "<", ">", "&", "~")


class FilterError(SelectorError):
    """A filter that cannot be compiled; the message names the selector, the text and the column."""


def _shown(text: str) -> str:
    """The filter text on one line: control characters escaped, everything else as typed."""
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def _caret_text(text: str) -> str:
    # Under a caret each character must stay one column wide, so control characters become '?'.
    return "".join(ch if ch.isprintable() else "?" for ch in text)


@dataclass(frozen=True)
class FilterSource:
    """A filter's text and the selector it belongs to: what every error message starts with."""

    text: str
    selector: str

    def error(self, span: Span, what: str, *, expected: str = "", hint: str = "",
              extra: str = "") -> FilterError:
        """A FilterError ``<selector> filter '<text>': <what> at column N[, expected E]``.

        ``detail`` holds the text with the span underlined, then ``extra`` (e.g. a field list).
        """
        column = span.start + 1
        message = f"{self.selector} filter '{_shown(self.text)}': {what} at column {column}"
        if expected:
            message += f", expected {expected}"
        caret = span.caret(_caret_text(self.text))
        detail = caret + (f"\n{extra}" if extra else "")
        return FilterError(message, detail=detail, hint=hint)


@dataclass(frozen=True)
class FieldRef:
    """A field name as written; the check pass resolves it against the event format."""

    name: str
    span: Span


@dataclass(frozen=True)
class IntLiteral:
    value: int
    span: Span


@dataclass(frozen=True)
class StrLiteral:
    """A double-quoted string, escapes already decoded, as UTF-8 bytes."""

    value: bytes
    span: Span


@dataclass(frozen=True)
class Compare:
    """``field OP value``; ``op_span`` locates the operator for type errors."""

    field: FieldRef
    op: str
    value: Union[IntLiteral, StrLiteral]
    op_span: Span
    span: Span


@dataclass(frozen=True)
class Not:
    operand: "Expr"
    span: Span


@dataclass(frozen=True)
class And:
    """Two or more terms, all of which must hold (n-ary so long chains stay shallow)."""

    terms: tuple["Expr", ...]
    span: Span


@dataclass(frozen=True)
class Or:
    terms: tuple["Expr", ...]
    span: Span


Expr = Union[Compare, Not, And, Or]
