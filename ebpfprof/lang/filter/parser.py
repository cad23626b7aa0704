"""Tokens → tree, by recursive descent.

Grammar, loosest binding first (``!`` binds tighter than ``&&``, which binds tighter than ``||``,
as in C and ftrace)::

    filter   := or_expr EOF
    or_expr  := and_expr ( '||' and_expr )*
    and_expr := unary ( '&&' unary )*
    unary    := '!' unary | primary
    primary  := '(' or_expr ')' | compare
    compare  := IDENT OP value
    OP       := '==' | '!=' | '<' | '<=' | '>' | '>=' | '&' | '~'
    value    := INT | STRING

Chains of ``&&``/``||`` become one n-ary node, so only parentheses and ``!`` add depth; both are
capped (``MAX_DEPTH``) so no input can exhaust Python's stack, and the number of comparisons is
capped (``MAX_COMPARISONS``) so no input can outgrow what the BPF verifier will accept.
"""
from __future__ import annotations

from ebpfprof.lang.filter.ast import (And, COMPARE_OPS, Compare, Expr, FieldRef, FilterSource,
                                 IntLiteral, Not, Or, StrLiteral)
from ebpfprof.lang.filter.lexer import Token, tokenize

__all__ = ["parse", "MAX_DEPTH", "MAX_COMPARISONS"]

MAX_DEPTH = 32
MAX_COMPARISONS = 64

_START = "a field name, '!' or '('"
_OPS_TEXT = "an operator (== != < <= > >= & ~)"


class _Parser:
    def __init__(self, src: FilterSource) -> None:
        self.src = src
        self.tokens = tokenize(src)
        self.pos = 0
        self.depth = 0
        self.comparisons = 0

    # -- token helpers -------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def at_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in ops

    def advance(self) -> Token:
        tok = self.tok
        if tok.kind != "eof":
            self.pos += 1
        return tok

    def unexpected(self, expected: str, hint: str = ""):
        tok = self.tok
        return self.src.error(tok.span, f"unexpected {tok.describe()}", expected=expected, hint=hint)

    def enter(self, tok: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.src.error(tok.span, f"nesting deeper than {MAX_DEPTH} levels of '(' and '!'")

    # -- grammar -------------------------------------------------------------------------------
    def filter(self) -> Expr:
        if self.tok.kind == "eof":
            raise self.src.error(self.tok.span, "empty filter", expected=_START)
        expr = self.or_expr()
        if self.tok.kind != "eof":
            if self.at_op(")"):
                raise self.src.error(self.tok.span, "unmatched ')'",
                                     expected="'&&', '||' or the end of the filter")
            raise self.unexpected("'&&', '||' or the end of the filter")
        return expr

    def or_expr(self) -> Expr:
        terms = [self.and_expr()]
        while self.at_op("||"):
            self.advance()
            terms.append(self.and_expr())
        if len(terms) == 1:
            return terms[0]
        return Or(tuple(terms), terms[0].span.to(terms[-1].span))

    def and_expr(self) -> Expr:
        terms = [self.unary()]
        while self.at_op("&&"):
            self.advance()
            terms.append(self.unary())
        if len(terms) == 1:
            return terms[0]
        return And(tuple(terms), terms[0].span.to(terms[-1].span))

    def unary(self) -> Expr:
        if self.at_op("!"):
            bang = self.advance()
            self.enter(bang)
            operand = self.unary()
            self.depth -= 1
            return Not(operand, bang.span.to(operand.span))
        return self.primary()

    def primary(self) -> Expr:
        if self.at_op("("):
            opening = self.advance()
            self.enter(opening)
            inner = self.or_expr()
            self.depth -= 1
            if not self.at_op(")"):
                raise self.unexpected(f"')' to close the '(' at column {opening.span.start + 1}")
            self.advance()
            # The parentheses only group; the node keeps the inner span.
            return inner
        if self.tok.kind == "ident":
            return self.compare()
        raise self.unexpected(_START)

    def compare(self) -> Compare:
        name = self.advance()
        field = FieldRef(name.text, name.span)
        if not (self.tok.kind == "op" and self.tok.text in COMPARE_OPS):
            hint = ""
            if self.tok.kind in ("int", "string"):
                hint = "write the comparison as FIELD OP VALUE, e.g. pid == 1"
            raise self.unexpected(_OPS_TEXT, hint)
        op_tok = self.advance()
        value_tok = self.tok
        if value_tok.kind == "int":
            value = IntLiteral(value_tok.value, value_tok.span)  # type: ignore[arg-type]
        elif value_tok.kind == "string":
            value = StrLiteral(value_tok.value, value_tok.span)  # type: ignore[arg-type]
        elif value_tok.kind == "ident":
            raise self.unexpected("a number or a string",
                                  hint=f'strings are double-quoted: "{value_tok.text}"; '
                                       "comparing two fields is not supported")
        else:
            raise self.unexpected("a number or a string")
        self.advance()
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise self.src.error(name.span.to(value.span),
                                 f"more than {MAX_COMPARISONS} comparisons in one filter")
        return Compare(field, op_tok.text, value, op_tok.span, name.span.to(value.span))


def parse(src: FilterSource) -> Expr:
    """Parse a filter; raises FilterError with the column and what was expected there.

    ``pid > 1 && !(comm == "sh")`` becomes
    ``And(terms=(Compare(pid > 1), Not(Compare(comm == b"sh"))))`` (spans left out).
    """
    return _Parser(src).filter()
