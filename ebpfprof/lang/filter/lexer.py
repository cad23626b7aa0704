"""Filter text → tokens, each with its span.

Tokens::

    IDENT   [A-Za-z_][A-Za-z0-9_]*                      pid  common_pid
    INT     -?(0|[1-9][0-9]*|0[xX][0-9a-fA-F]+)          42  -1  0x1f
    STRING  "..." with \\" \\\\ \\n \\t \\xNN escapes        "bash"  "a\\x2ab"
    OP      == != <= >= < > & ~ && || ! ( )

Whitespace (space, tab, newline, CR) separates tokens and is otherwise ignored. There is no binary
minus, so '-' only starts a negative number. A decimal with a leading zero ("010") is refused:
ftrace reads it as octal, and guessing either way would silently change a filter's meaning.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from ebpfprof.lang.filter.ast import FilterSource, Span

__all__ = ["Token", "tokenize", "MAX_INT_BITS"]

# No field is wider than 64 bits; a literal beyond ±2**64 can never be compared, and refusing it
# early keeps absurdly long digit strings away from int() (which limits them anyway).
MAX_INT_BITS = 64

_WHITESPACE = " \t\n\r"
_IDENT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT_CHARS = _IDENT_START | frozenset("0123456789")
_DIGITS = frozenset("0123456789")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
# Longest first, so '<=' is not read as '<' then '='.
_OPERATORS = ("==", "!=", "<=", ">=", "&&", "||", "<", ">", "&", "~", "!", "(", ")")
_SIMPLE_ESCAPES = {'"': 0x22, "\\": 0x5C, "n": 0x0A, "t": 0x09}


@dataclass(frozen=True)
class Token:
    """``kind`` is 'ident', 'int', 'string', 'op' or 'eof'; ``value`` the decoded literal."""

    kind: str
    text: str
    span: Span
    value: Union[int, bytes, None] = None

    def describe(self) -> str:
        """How an error message names this token."""
        if self.kind == "eof":
            return "end of filter"
        if self.kind == "string":
            return "a string"
        return f"'{self.text}'"


def _char_name(ch: str) -> str:
    return f"'{ch}'" if ch.isprintable() else repr(ch)


def tokenize(src: FilterSource) -> list[Token]:
    """All tokens of ``src.text``, ending with an 'eof' token; raises FilterError."""
    text = src.text
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in _WHITESPACE:
            i += 1
        elif ch in _IDENT_START:
            j = i + 1
            while j < n and text[j] in _IDENT_CHARS:
                j += 1
            tokens.append(Token("ident", text[i:j], Span(i, j)))
            i = j
        elif ch in _DIGITS or (ch == "-" and i + 1 < n and text[i + 1] in _DIGITS):
            tok = _number(src, i)
            tokens.append(tok)
            i = tok.span.end
        elif ch == '"':
            tok = _string(src, i)
            tokens.append(tok)
            i = tok.span.end
        else:
            op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
            if op is None:
                raise _unexpected_char(src, i)
            tokens.append(Token("op", op, Span(i, i + len(op))))
            i += len(op)
    tokens.append(Token("eof", "", Span(n, n + 1)))
    return tokens


def _unexpected_char(src: FilterSource, i: int):
    ch = src.text[i]
    span = Span(i, i + 1)
    if ch == "=":
        return src.error(span, "unexpected '='", expected="'==' (comparison)")
    if ch == "|":
        return src.error(span, "unexpected '|'", expected="'||'")
    if ch == "-":
        return src.error(span, "unexpected '-'", expected="a digit right after '-' (a negative number)")
    if ch == "'":
        return src.error(span, "unexpected \"'\"", expected="a double-quoted string",
                         hint='strings are double-quoted: "text"')
    return src.error(span, f"unexpected character {_char_name(ch)}")


def _number(src: FilterSource, start: int) -> Token:
    text = src.text
    i = start
    negative = text[i] == "-"
    if negative:
        i += 1
    if text.startswith(("0x", "0X"), i):
        j = i + 2
        while j < len(text) and text[j] in _HEX_DIGITS:
            j += 1
        digits, base = text[i + 2:j], 16
        if not digits:
            raise src.error(Span(start, j), "hexadecimal number without digits",
                            expected="hex digits after '0x'")
    else:
        j = i
        while j < len(text) and text[j] in _DIGITS:
            j += 1
        digits, base = text[i:j], 10
        if len(digits) > 1 and digits[0] == "0":
            raise src.error(Span(start, j), f"number with a leading zero '{text[start:j]}'",
                            hint="ftrace would read it as octal; write it in decimal or as 0x...")
    # '12ab' is one malformed word, not a number followed by a field.
    if j < len(text) and text[j] in _IDENT_CHARS:
        k = j
        while k < len(text) and text[k] in _IDENT_CHARS:
            k += 1
        raise src.error(Span(start, k), f"malformed number '{text[start:k]}'")
    significant = digits.lstrip("0")
    # 20 decimal digits or 16 hex digits cover 64 bits; anything longer is out of range for sure.
    if len(significant) > (20 if base == 10 else 16):
        raise src.error(Span(start, j), "integer literal wider than 64 bits")
    value = int(digits, base)
    if negative:
        value = -value
    if not -(1 << (MAX_INT_BITS - 1)) <= value < (1 << MAX_INT_BITS):
        raise src.error(Span(start, j), "integer literal wider than 64 bits")
    return Token("int", text[start:j], Span(start, j), value)


def _string(src: FilterSource, start: int) -> Token:
    text = src.text
    out = bytearray()
    i = start + 1
    while True:
        if i >= len(text):
            raise src.error(Span(start, len(text)), "unterminated string", expected="a closing '\"'")
        ch = text[i]
        if ch == '"':
            i += 1
            break
        if ch == "\\":
            if i + 1 >= len(text):
                raise src.error(Span(start, len(text)), "unterminated string",
                                expected="a closing '\"'")
            esc = text[i + 1]
            if esc in _SIMPLE_ESCAPES:
                out.append(_SIMPLE_ESCAPES[esc])
                i += 2
            elif esc == "x":
                hex_digits = text[i + 2:i + 4]
                if len(hex_digits) != 2 or any(c not in _HEX_DIGITS for c in hex_digits):
                    raise src.error(Span(i, min(i + 4, len(text))), "bad escape in string",
                                    expected="two hex digits after '\\x'")
                byte = int(hex_digits, 16)
                if byte == 0:
                    raise src.error(Span(i, i + 4), "NUL byte in string",
                                    hint="a kernel string ends at its first NUL, so it cannot hold one")
                out.append(byte)
                i += 4
            else:
                shown = f"'\\{esc}'" if esc.isprintable() else f"'\\' before {_char_name(esc)}"
                raise src.error(Span(i, i + 2), f"unknown escape {shown} in string",
                                expected='one of \\" \\\\ \\n \\t \\xNN')
        elif ch == "\0":
            raise src.error(Span(i, i + 1), "NUL byte in string",
                            hint="a kernel string ends at its first NUL, so it cannot hold one")
        else:
            try:
                out += ch.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate smuggled in from a bytes→str decode
                raise src.error(Span(i, i + 1), f"character {_char_name(ch)} cannot be encoded "
                                "as UTF-8") from None
            i += 1
    return Token("string", text[start:i], Span(start, i), bytes(out))
