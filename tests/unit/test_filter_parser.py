"""Tokens → tree: precedence, grouping, spans, limits, and parse errors with their exact text."""
from __future__ import annotations

import pytest

from ebpfprof.lang.filter import FilterError
from ebpfprof.lang.filter.ast import And, Compare, FilterSource, Not, Or, Span
from ebpfprof.lang.filter.parser import MAX_COMPARISONS, MAX_DEPTH, parse

SEL = "sched:sched_wakeup"


def shape(node) -> object:
    """The tree as nested tuples: ('&&', ...), ('||', ...), ('!', x) and 'name op value'."""
    if isinstance(node, Compare):
        return f"{node.field.name}{node.op}{node.value.value!r}"
    if isinstance(node, Not):
        return ("!", shape(node.operand))
    op = "&&" if isinstance(node, And) else "||"
    return (op, *(shape(t) for t in node.terms))


def p(text: str):
    return shape(parse(FilterSource(text, SEL)))


def parse_error(text: str) -> FilterError:
    with pytest.raises(FilterError) as info:
        parse(FilterSource(text, SEL))
    return info.value


def test_single_comparison():
    node = parse(FilterSource('comm ~ "ba*"', SEL))
    assert isinstance(node, Compare)
    assert (node.field.name, node.op, node.value.value) == ("comm", "~", b"ba*")
    assert (node.field.span, node.op_span, node.value.span, node.span) == (
        Span(0, 4), Span(5, 6), Span(7, 12), Span(0, 12))


def test_and_binds_tighter_than_or():
    assert p("a==1 || b==2 && c==3") == ("||", "a==1", ("&&", "b==2", "c==3"))
    assert p("a==1 && b==2 || c==3") == ("||", ("&&", "a==1", "b==2"), "c==3")


def test_not_binds_tighter_than_and():
    assert p("!a==1 && b==2") == ("&&", ("!", "a==1"), "b==2")
    assert p("!(a==1 && b==2)") == ("!", ("&&", "a==1", "b==2"))
    assert p("!!a==1") == ("!", ("!", "a==1"))


def test_parentheses_group():
    assert p("(a==1 || b==2) && c==3") == ("&&", ("||", "a==1", "b==2"), "c==3")
    assert p("((a==1))") == "a==1"


def test_chains_are_flat():
    assert p("a==1 && b==2 && c==3") == ("&&", "a==1", "b==2", "c==3")
    assert p("a==1 || b==2 || c==3 || d==4") == ("||", "a==1", "b==2", "c==3", "d==4")


def test_spans_cover_the_text():
    node = parse(FilterSource("a==1 && !b==2", SEL))
    assert isinstance(node, And) and node.span == Span(0, 13)
    assert node.terms[1].span == Span(8, 13)


def test_long_chain_does_not_recurse():
    text = " || ".join(f"pid=={i}" for i in range(MAX_COMPARISONS))
    node = parse(FilterSource(text, SEL))
    assert isinstance(node, Or) and len(node.terms) == MAX_COMPARISONS


@pytest.mark.parametrize("text, message", [
    ("pid>>1000", "sched:sched_wakeup filter 'pid>>1000': unexpected '>' at column 5, "
                  "expected a number or a string"),
    ("", "sched:sched_wakeup filter '': empty filter at column 1, expected a field name, "
         "'!' or '('"),
    ("   ", "sched:sched_wakeup filter '   ': empty filter at column 4, expected a field name, "
            "'!' or '('"),
    ("pid", "sched:sched_wakeup filter 'pid': unexpected end of filter at column 4, expected "
            "an operator (== != < <= > >= & ~)"),
    ("pid ==", "sched:sched_wakeup filter 'pid ==': unexpected end of filter at column 7, "
               "expected a number or a string"),
    ("pid == 1 &&", "sched:sched_wakeup filter 'pid == 1 &&': unexpected end of filter at "
                    "column 12, expected a field name, '!' or '('"),
    ("pid == 1 pid == 2", "sched:sched_wakeup filter 'pid == 1 pid == 2': unexpected 'pid' at "
                          "column 10, expected '&&', '||' or the end of the filter"),
    ("(pid == 1", "sched:sched_wakeup filter '(pid == 1': unexpected end of filter at column "
                  "10, expected ')' to close the '(' at column 1"),
    ("pid == 1)", "sched:sched_wakeup filter 'pid == 1)': unmatched ')' at column 9, expected "
                  "'&&', '||' or the end of the filter"),
    ("1 == pid", "sched:sched_wakeup filter '1 == pid': unexpected '1' at column 1, expected "
                 "a field name, '!' or '('"),
    ("comm == bash", "sched:sched_wakeup filter 'comm == bash': unexpected 'bash' at column 9, "
                     "expected a number or a string"),
    ("() ", "sched:sched_wakeup filter '() ': unexpected ')' at column 2, expected a field "
            "name, '!' or '('"),
    ("pid 1", "sched:sched_wakeup filter 'pid 1': unexpected '1' at column 5, expected an "
              "operator (== != < <= > >= & ~)"),
    ("pid == 1 & 2", "sched:sched_wakeup filter 'pid == 1 & 2': unexpected '&' at column 10, "
                     "expected '&&', '||' or the end of the filter"),
    ("!", "sched:sched_wakeup filter '!': unexpected end of filter at column 2, expected a "
          "field name, '!' or '('"),
])
def test_parse_errors(text, message):
    assert parse_error(text).message == message


def test_the_spec_example_points_at_the_second_angle_bracket():
    err = parse_error("pid>>1000")
    assert err.detail == "    pid>>1000\n        ^"
    assert err.exit_code == 2


def test_identifier_as_value_hints_at_quotes():
    assert parse_error("comm == bash").hint.startswith('strings are double-quoted: "bash"')


def test_nesting_is_limited():
    ok = "(" * MAX_DEPTH + "pid==1" + ")" * MAX_DEPTH
    parse(FilterSource(ok, SEL))
    err = parse_error("(" * (MAX_DEPTH + 1) + "pid==1" + ")" * (MAX_DEPTH + 1))
    assert f"nesting deeper than {MAX_DEPTH} levels" in err.message
    err = parse_error("!" * 100000 + "pid==1")
    assert "nesting deeper" in err.message


def test_comparisons_are_limited():
    text = " && ".join(["pid==1"] * (MAX_COMPARISONS + 1))
    err = parse_error(text)
    assert f"more than {MAX_COMPARISONS} comparisons" in err.message
