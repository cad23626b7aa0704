"""Filter text → tokens: literals, operators, spans, and every lexical error's exact text."""
from __future__ import annotations

import pytest

from ebpfprof.lang.filter import FilterError
from ebpfprof.lang.filter.ast import FilterSource, Span
from ebpfprof.lang.filter.lexer import tokenize

SEL = "sched:sched_wakeup"


def toks(text: str) -> list[tuple[str, object]]:
    return [(t.kind, t.value if t.kind in ("int", "string") else t.text)
            for t in tokenize(FilterSource(text, SEL))]


def lex_error(text: str) -> FilterError:
    with pytest.raises(FilterError) as info:
        tokenize(FilterSource(text, SEL))
    return info.value


def test_comparison_tokens_and_spans():
    tokens = tokenize(FilterSource("pid>=10", SEL))
    assert [(t.kind, t.text, t.span) for t in tokens] == [
        ("ident", "pid", Span(0, 3)), ("op", ">=", Span(3, 5)), ("int", "10", Span(5, 7)),
        ("eof", "", Span(7, 8)),
    ]


@pytest.mark.parametrize("op", ["==", "!=", "<", "<=", ">", ">=", "&", "~", "&&", "||", "!",
                                "(", ")"])
def test_every_operator(op):
    assert toks(f"a{op}b")[1] == ("op", op)


def test_longest_operator_wins():
    assert toks("a<=1&&!b") == [("ident", "a"), ("op", "<="), ("int", 1), ("op", "&&"),
                                ("op", "!"), ("ident", "b"), ("eof", "")]


def test_whitespace_anywhere():
    assert toks(" \tpid \n==\r\n 1 ") == [("ident", "pid"), ("op", "=="), ("int", 1), ("eof", "")]


@pytest.mark.parametrize("text, value", [
    ("0", 0), ("42", 42), ("-1", -1), ("-0", 0), ("0x1f", 31), ("0XFF", 255), ("-0x10", -16),
    ("18446744073709551615", 2 ** 64 - 1), ("0xffffffffffffffff", 2 ** 64 - 1),
    ("-9223372036854775808", -(2 ** 63)), ("000x1", None),
])
def test_integers(text, value):
    if value is None:
        assert "leading zero" in lex_error(text).message
    else:
        assert toks(text)[0] == ("int", value)


def test_minus_only_before_digits():
    # 'a-1' is the field 'a' then the number -1; there is no subtraction.
    assert toks("a-1") == [("ident", "a"), ("int", -1), ("eof", "")]


@pytest.mark.parametrize("text, value", [
    ('""', b""), ('"bash"', b"bash"), (r'"a\"b"', b'a"b'), (r'"a\\b"', b"a\\b"),
    (r'"\n\t"', b"\n\t"), (r'"\x41\x7e"', b"A~"), ('"é"', "é".encode()), ('"*/"', b"*/"),
    ('"a b"', b"a b"),
])
def test_strings(text, value):
    assert toks(text)[0] == ("string", value)


@pytest.mark.parametrize("text, message", [
    ("pid = 1", "sched:sched_wakeup filter 'pid = 1': unexpected '=' at column 5, "
                "expected '==' (comparison)"),
    ("a | b", "sched:sched_wakeup filter 'a | b': unexpected '|' at column 3, expected '||'"),
    ("pid == - 1", "sched:sched_wakeup filter 'pid == - 1': unexpected '-' at column 8, "
                   "expected a digit right after '-' (a negative number)"),
    ("comm == 'sh'", "sched:sched_wakeup filter 'comm == 'sh'': unexpected \"'\" at column 9, "
                     "expected a double-quoted string"),
    ("pid $ 1", "sched:sched_wakeup filter 'pid $ 1': unexpected character '$' at column 5"),
    ("pid == 010", "sched:sched_wakeup filter 'pid == 010': number with a leading zero '010' "
                   "at column 8"),
    ("pid == 12ab", "sched:sched_wakeup filter 'pid == 12ab': malformed number '12ab' at column 8"),
    ("pid == 0x", "sched:sched_wakeup filter 'pid == 0x': hexadecimal number without digits "
                  "at column 8, expected hex digits after '0x'"),
    ("pid == 18446744073709551616", "sched:sched_wakeup filter 'pid == 18446744073709551616': "
                                    "integer literal wider than 64 bits at column 8"),
    ("pid == " + "9" * 5000, None),
    ('comm == "abc', "sched:sched_wakeup filter 'comm == \"abc': unterminated string at column 9, "
                     "expected a closing '\"'"),
    ('comm == "a\\q"', "sched:sched_wakeup filter 'comm == \"a\\q\"': unknown escape '\\q' in "
                       "string at column 11, expected one of \\\" \\\\ \\n \\t \\xNN"),
    ('comm == "\\x4"', "sched:sched_wakeup filter 'comm == \"\\x4\"': bad escape in string at "
                       "column 10, expected two hex digits after '\\x'"),
    ('comm == "\\x00"', "sched:sched_wakeup filter 'comm == \"\\x00\"': NUL byte in string at "
                        "column 10"),
    ("comm == \"a\0\"", "sched:sched_wakeup filter 'comm == \"a\\x00\"': NUL byte in string at "
                        "column 11"),
    ("pid\n== 1 $", "sched:sched_wakeup filter 'pid\\n== 1 $': unexpected character '$' "
                    "at column 10"),
])
def test_lexical_errors(text, message):
    err = lex_error(text)
    if message is None:
        assert "wider than 64 bits" in err.message
    else:
        assert err.message == message


def test_error_detail_is_the_caret_and_hint():
    err = lex_error("comm == 'sh'")
    assert err.detail == "    comm == 'sh'\n            ^"
    assert err.hint == 'strings are double-quoted: "text"'


def test_caret_keeps_columns_with_control_characters():
    err = lex_error("a\t== $")
    assert err.detail == "    a?== $\n         ^"
