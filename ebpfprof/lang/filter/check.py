"""Typecheck a parsed filter against the event's format: the tree's leaves become typed tests.

Each ``Compare`` is resolved to a format ``Field`` and replaced by one of

* ``IntTest``  — an integer field against a literal that fits the field's own C type;
* ``StrTest``  — a string field ``==``/``!=`` a literal;
* ``GlobTest`` — a string field ``~`` a glob, with its DFA already built;

while ``And``/``Or``/``Not`` keep their shape. Nothing here knows C; ``to_c`` does.

Decisions (see docs/filters.md):

* A literal outside the field's range (``prio > 5000000000`` on an ``int``, ``len == -1`` on an
  ``unsigned int``) is an error, not a silently constant comparison. For a bit test ``&`` a mask may
  also be written as the unsigned bit pattern of a signed field (``prio & 0x80000000``).
* Strings are examined up to ``STRING_CAP`` bytes in the kernel; a literal that could only match a
  longer string is an error.
* When BPF runs, the kernel has not yet written the record's ``common_*`` header (its first 8 bytes
  hold a pointer to the registers instead). ``common_pid`` is therefore taken from
  ``bpf_get_current_pid_tgid()`` (the same value the kernel will store) and ``common_type`` is the
  event id; ``common_flags`` and ``common_preempt_count`` cannot be filtered in the kernel.
* An integer field named ``ifindex``, ``iif``, ``oif`` or ``*_ifindex`` may be compared with an
  interface name (``ifindex == "lo"``), resolved once, here, in the caller's network namespace.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

from ebpfprof.errors import close_matches
from ebpfprof.lang.filter.ast import (INT_OPS, STR_OPS, And, Compare, Expr, FilterSource, IntLiteral,
                                 Not, Or, Span, StrLiteral)
from ebpfprof.lang.filter.glob import MAX_STATES, MAX_TABLE, Dfa, GlobTooComplex, compile_glob
from ebpfprof.kernel.event_format import STRING_KINDS, EventFormat, Field, FieldKind

__all__ = [
    "STRING_CAP", "SCRATCH_LIMIT", "IntTest", "StrTest", "GlobTest", "Test", "CheckedExpr", "check",
    "is_ifindex_field", "IfindexResolver", "default_ifindex_resolver",
]

# Bytes of a string field the kernel side looks at. Equality is exact for any literal up to this
# long; a glob sees at most this many bytes (see GlobTest).
STRING_CAP = 128

# The glob tables live in one per-CPU map value, which the kernel caps at 32 KiB
# (PCPU_MIN_UNIT_SIZE); the string buffer takes a little of it.
SCRATCH_LIMIT = 32 * 1024
_STRING_BUFFER = 144

# Bytes 0..7 of the record are overwritten with a pt_regs pointer before BPF runs
# (perf_trace_run_bpf_submit) and only filled with the common header afterwards.
_HEADER_SIZE = 8

IfindexResolver = Callable[[str], Optional[int]]


@dataclass(frozen=True)
class IntTest:
    """``field OP value`` compared in the field's own C type ``ctype`` (u8..u64, s8..s64).

    ``source`` says where the value comes from: 'record' (the tracepoint record at
    ``field.offset``), 'current_pid' (``common_pid``) or 'event_id' (``common_type``).
    """

    field: Field
    op: str
    value: int
    ctype: str
    source: str
    span: Span

    @property
    def bits(self) -> int:
        return int(self.ctype[1:])

    @property
    def signed(self) -> bool:
        return self.ctype[0] == "s"


@dataclass(frozen=True)
class StrTest:
    """``field == value`` / ``field != value`` on the whole NUL-terminated string."""

    field: Field
    op: str
    value: bytes
    span: Span


@dataclass(frozen=True)
class GlobTest:
    """``field ~ pattern``: the whole string must match.

    A string longer than STRING_CAP bytes matches only when its first STRING_CAP bytes already
    decide the match (the DFA is then in its accept-all state, as after a trailing ``*``).
    """

    field: Field
    pattern: bytes
    dfa: Dfa
    span: Span


Test = Union[IntTest, StrTest, GlobTest]
CheckedExpr = Union[Test, Not, And, Or]


def is_ifindex_field(name: str) -> bool:
    """Whether an integer field holds a network interface index (compared by name)."""
    return name in ("ifindex", "iif", "oif") or name.endswith("_ifindex")


def default_ifindex_resolver(name: str) -> Optional[int]:
    """The interface index of ``name`` in this network namespace (pyroute2), or None."""
    from pyroute2 import IPRoute  # lazily: most filters never need netlink

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def _int_range(ctype: str) -> tuple[int, int]:
    bits = int(ctype[1:])
    if ctype[0] == "s":
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _describe(field: Field, ctype: str = "") -> str:
    if field.kind is FieldKind.INT:
        return f"{field.type}, {ctype}"
    return field.type


class _Checker:
    def __init__(self, src: FilterSource, fmt: EventFormat, resolver: Optional[IfindexResolver]):
        self.src = src
        self.fmt = fmt
        self.resolver = resolver
        self.scratch_used = _STRING_BUFFER

    def expr(self, node: Expr) -> CheckedExpr:
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, Not):
            return Not(self.expr(node.operand), node.span)
        if isinstance(node, And):
            return And(tuple(self.expr(t) for t in node.terms), node.span)
        if isinstance(node, Or):
            return Or(tuple(self.expr(t) for t in node.terms), node.span)
        raise TypeError(f"not a filter node: {node!r}")  # a bug in the parser, not user input

    def field(self, node: Compare) -> Field:
        ref = node.field
        field = self.fmt.field(ref.name)
        if field is None:
            names = [f.name for f in self.fmt.fields]
            close = close_matches(ref.name, names, n=1)
            hint = f"did you mean '{close[0]}'?" if close else ""
            listing = f"    fields of {self.fmt.full_name}: {' '.join(names)}"
            raise self.src.error(ref.span, f"unknown field '{ref.name}'", hint=hint, extra=listing)
        return field

    def compare(self, node: Compare) -> Test:
        field = self.field(node)
        if field.kind is FieldKind.INT:
            return self.int_compare(node, field)
        if field.kind in STRING_KINDS:
            return self.str_compare(node, field)
        raise self.src.error(node.field.span,
                             f"field '{field.name}' ({field.type}) cannot be filtered",
                             hint="only integer and string fields can be; filter the others "
                                  "in your script")

    # -- integers ------------------------------------------------------------------------------
    def int_source(self, node: Compare, field: Field) -> str:
        if field.offset >= _HEADER_SIZE:
            return "record"
        if field.name == "common_pid" and field.size == 4:
            return "current_pid"
        if field.name == "common_type":
            if self.fmt.id < 0:
                raise self.src.error(node.field.span, "the event id is unknown, so 'common_type' "
                                     "cannot be filtered")
            return "event_id"
        raise self.src.error(node.field.span, f"field '{field.name}' cannot be filtered in the "
                             "kernel", hint="the kernel writes the common_* header after BPF "
                                            "programs run; test it in your script instead")

    def int_compare(self, node: Compare, field: Field) -> IntTest:
        ctype = ("s" if field.signed else "u") + str(field.size * 8)
        desc = _describe(field, ctype)
        if node.op not in INT_OPS:
            raise self.src.error(node.op_span, f"operator '{node.op}' needs a string field, but "
                                 f"'{field.name}' is an integer ({desc})",
                                 hint="integers take == != < <= > >= &")
        source = self.int_source(node, field)
        value = node.value
        if isinstance(value, StrLiteral):
            if is_ifindex_field(field.name):
                value = self.resolve_ifindex(node, field, value)
            else:
                raise self.src.error(value.span, f"cannot compare integer field '{field.name}' "
                                     f"({desc}) with a string")
        lo, hi = _int_range(ctype)
        v = value.value
        if node.op == "&":
            # A mask is a bit pattern: a signed field also takes its unsigned spelling.
            if field.signed:
                hi = (1 << (field.size * 8)) - 1
        if v < lo and not field.signed:
            pattern = v & ((1 << (field.size * 8)) - 1)
            hint = f"to match the same bits write {pattern} ({hex(pattern)})" \
                if v >= -(1 << (field.size * 8 - 1)) else ""
            raise self.src.error(value.span, f"negative number {v} for unsigned field "
                                 f"'{field.name}' ({desc})", hint=hint)
        if not lo <= v <= hi:
            raise self.src.error(value.span, f"number {v} is out of range for field "
                                 f"'{field.name}' ({desc}: {lo}..{hi})")
        return IntTest(field, node.op, v, ctype, source, node.span)

    def resolve_ifindex(self, node: Compare, field: Field, lit: StrLiteral) -> IntLiteral:
        if node.op not in ("==", "!="):
            raise self.src.error(node.op_span, f"an interface name can only be compared with == "
                                 f"or !=, not '{node.op}'")
        name = lit.value.decode("utf-8", "replace")  # '\xff' escapes may make invalid UTF-8
        if not name or len(lit.value) > 15 or any(c in name for c in "/ \t\n\ufffd"):
            raise self.src.error(lit.span, f"'{_printable(name)}' is not a network interface name")
        resolver = self.resolver or default_ifindex_resolver
        try:
            index = resolver(name)
        except ImportError:
            raise self.src.error(lit.span, "resolving an interface name needs pyroute2",
                                 hint="pip install pyroute2") from None
        except (LookupError, ValueError):
            index = None
        except Exception as exc:  # netlink failures must not escape as tracebacks
            raise self.src.error(lit.span, f"cannot resolve interface '{name}': {exc}") from None
        if index is None:
            raise self.src.error(lit.span, f"unknown network interface '{name}'",
                                 hint="interface names are resolved in the current network "
                                      "namespace; see 'ip link'")
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise self.src.error(lit.span, f"cannot resolve interface '{name}': the resolver "
                                 f"returned {index!r}")
        return IntLiteral(index, lit.span)

    # -- strings -------------------------------------------------------------------------------
    def str_compare(self, node: Compare, field: Field) -> Union[StrTest, GlobTest]:
        if node.op not in STR_OPS:
            raise self.src.error(node.op_span, f"operator '{node.op}' is not defined for string "
                                 f"field '{field.name}' ({field.type})",
                                 hint="strings take ==, != and ~ (glob)")
        value = node.value
        if isinstance(value, IntLiteral):
            raise self.src.error(value.span, f"cannot compare string field '{field.name}' "
                                 f"({field.type}) with a number",
                                 hint=f'to compare with text write "{value.value}"')
        if node.op == "~":
            try:
                dfa = compile_glob(value.value)
            except GlobTooComplex as exc:
                raise self.src.error(value.span, f"glob too complex for the kernel ({exc})",
                                     hint=f"at most {MAX_STATES} DFA states and {MAX_TABLE} table "
                                          "cells; fewer '*' before '?' help") from None
            if dfa.start not in (dfa.dead, dfa.accept_all):  # trivial globs need no table
                self.scratch_used += 256 + dfa.table_cells
                if self.scratch_used > SCRATCH_LIMIT:
                    raise self.src.error(value.span, "the globs of this filter need more than "
                                         f"{SCRATCH_LIMIT} bytes of tables per CPU",
                                         hint="use fewer or simpler globs")
            return GlobTest(field, value.value, dfa, node.span)
        limit = STRING_CAP
        if field.kind is FieldKind.STRING and field.size < limit:
            limit = field.size
        if len(value.value) > limit:
            what = (f"'{field.name}' ({field.type}) holds at most {field.size} bytes"
                    if limit == field.size else
                    f"strings are compared on their first {STRING_CAP} bytes in the kernel")
            raise self.src.error(value.span, f"string of {len(value.value)} bytes can never "
                                 f"match: {what}")
        return StrTest(field, node.op, value.value, node.span)


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() and c != "\ufffd" else "?" for c in text)


def check(tree: Expr, fmt: EventFormat, src: FilterSource, *,
          ifindex_resolver: Optional[IfindexResolver] = None) -> CheckedExpr:
    """Resolve every field of ``tree`` against ``fmt``; raises FilterError on the first problem."""
    return _Checker(src, fmt, ifindex_resolver).expr(tree)
