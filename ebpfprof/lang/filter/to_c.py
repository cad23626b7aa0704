"""Checked filter → BPF C: one inline function that returns nonzero to keep the event.

Shape of the output (every name starts with the caller's ``fn_name``, written FN here)::

    struct FN_scratch_t, FN_scratch   per-CPU scratch: string bytes and glob tables (if needed)
    FN_init_dfas(scratch)             writes the glob tables, once per CPU
    FN_read_sJ(ctx, buf)              copies string field J into the buffer, returns its length
    FN_globK(s, len, classes, next)   runs clause K's glob DFA over the string's bytes
    FN_cK(ctx[, scratch])             clause K: one comparison, after a comment quoting it
    FN(ctx)                           the clauses combined with && || !, as the filter wrote them

Safety: nothing the user typed reaches the C except inside comments, and those are sanitized
(``comment_text``). Fields become offsets from the format, integers are re-emitted in decimal from
their parsed value, a string literal's bytes as hexadecimal words packed from its parsed value,
glob bytes as character constants (printable ASCII but quote and backslash) or numbers.

Why it looks like this:

* The BPF verifier accepts direct context loads only at constant, naturally aligned offsets past
  the first 8 bytes, and only as ``ctx`` plus a constant: clang, left alone, computes ``ctx + 16``
  once for two clauses that read the same field, and the verifier refuses the shared pointer. So
  integer fields are loaded in an ``asm`` statement of exactly that form. String bytes sit at variable offsets, so they are copied with
  ``bpf_probe_read_kernel_str`` into a per-CPU buffer (the 512-byte stack belongs to the whole
  program). Tracing programs do not nest on one CPU, so one buffer per CPU is enough.
* A glob's DFA is a table in that per-CPU map, written once per CPU. BCC 0.26 cannot load global
  read-only data (``static const`` arrays get no relocation), and the table has to live in memory
  the verifier does not track anyway: with the state held in a register as a constant, the verifier
  walks every (position, state) pair — a 16-state glob cost 570k of its 1M-instruction budget.
  Read from map memory, the next state is "some number below N", and the paths through one byte
  all merge at the next.
* A string literal is compared 8 bytes at a time and the differences OR-ed together: one branch
  per clause, where byte-by-byte comparison made 64 clauses of 128 bytes exceed the verifier's
  limit of 8192 branches on one path.
* Literals were range-checked against the field's type, so comparing the field's value with a
  64-bit constant gives the same answer as comparing in the field's own type.
"""
from __future__ import annotations

import re
from typing import Union

from ebpfprof.lang.filter.ast import And, FilterSource, Not, Or
from ebpfprof.lang.filter.check import STRING_CAP, CheckedExpr, GlobTest, IntTest, StrTest
from ebpfprof.lang.filter.glob import Dfa
from ebpfprof.codegen.c import c_comment
from ebpfprof.kernel.event_format import EventFormat, Field, FieldKind

__all__ = ["emit_c", "comment_text", "c_int_literal"]

# Bytes copied for a string longer than the cap: STRING_CAP examined, one more to see that it is
# longer, one for the NUL the helper always writes. Rounded up to 8 for the buffer itself.
_READ_SIZE = STRING_CAP + 2
_BUF_SIZE = (_READ_SIZE + 7) // 8 * 8

_C_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

Clause = Union[IntTest, StrTest, GlobTest]


def comment_text(text: str, limit: int = 160) -> str:
    """``text`` made safe inside a ``/* */`` comment (``codegen.c.c_comment``), in quotes so it
    can never end in a backslash."""
    return f"'{c_comment(text, limit)}'"


def c_int_literal(value: int, signed: bool) -> str:
    """A 64-bit C constant for ``value``: ``42LL``, ``42ULL``; INT64_MIN spelled so C accepts it."""
    if signed:
        if value == -(1 << 63):
            return "(-9223372036854775807LL - 1)"
        return f"{value}LL"
    return f"{value}ULL"


def _c_byte(b: int) -> str:
    # Printable ASCII reads better as a character constant; quote and backslash stay numeric.
    if 0x20 <= b <= 0x7E and b not in (0x27, 0x5C):
        return f"'{chr(b)}'"
    return str(b)


def _ranges(values: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for v in sorted(values):
        if out and out[-1][1] == v - 1:
            out[-1] = (out[-1][0], v)
        else:
            out.append((v, v))
    return out


def _needs_table(dfa: Dfa) -> bool:
    """Whether the glob's answer depends on the string (else it is a constant, no table)."""
    return dfa.start not in (dfa.dead, dfa.accept_all)


class _Emitter:
    def __init__(self, fmt: EventFormat, src: FilterSource, fn: str) -> None:
        self.fmt = fmt
        self.src = src
        self.fn = fn
        self.clauses: list[Clause] = []
        self.string_fields: dict[str, int] = {}  # field name → J of FN_read_sJ
        self.fields: list[str] = []

    # -- walking the tree ----------------------------------------------------------------------
    def collect(self, node: CheckedExpr) -> None:
        if isinstance(node, (And, Or)):
            for t in node.terms:
                self.collect(t)
        elif isinstance(node, Not):
            self.collect(node.operand)
        else:
            self.clauses.append(node)
            if node.field.name not in self.fields:
                self.fields.append(node.field.name)
            if isinstance(node, (StrTest, GlobTest)):
                self.string_fields.setdefault(node.field.name, len(self.string_fields))

    def clause_number(self, node: Clause) -> int:
        return next(i for i, c in enumerate(self.clauses) if c is node)

    def expr(self, node: CheckedExpr, nested: bool = False) -> str:
        if isinstance(node, (And, Or)):
            op = " && " if isinstance(node, And) else " || "
            text = op.join(self.expr(t, True) for t in node.terms)
            # Every nested group is parenthesized: the grouping shows without knowing C's rules.
            return f"({text})" if nested else text
        if isinstance(node, Not):
            return "!" + self.expr(node.operand, True)
        args = "ctx" if isinstance(node, IntTest) else "ctx, scratch"
        return f"{self.fn}_c{self.clause_number(node)}({args})"

    def tables(self) -> list[tuple[int, Dfa, tuple[tuple[int, ...], ...]]]:
        """(clause number, DFA, byte classes) of each glob that needs a table."""
        return [(k, c.dfa, c.dfa.classes) for k, c in enumerate(self.clauses)
                if isinstance(c, GlobTest) and _needs_table(c.dfa)]

    @staticmethod
    def clause_comment(k: int, text: str) -> str:
        return f"/* clause {k}: {comment_text(text)} */"

    def clause_text(self, t: Clause) -> str:
        return self.src.text[t.span.start:t.span.end]

    # -- pieces --------------------------------------------------------------------------------
    def header(self) -> list[str]:
        return [
            f"/* Filter for {comment_text(self.fmt.full_name)}, generated by ebpfprof.lang.filter: "
            "do not edit.",
            f" * filter: {comment_text(self.src.text, limit=400)}",
            " */",
        ]

    def scratch(self) -> list[str]:
        out = [
            "/* String bytes are copied here and glob tables kept here: a per-CPU map keeps them",
            " * off the 512-byte stack, and tracing programs do not nest on one CPU. */",
            f"struct {self.fn}_scratch_t {{",
            f"\tu8 buf[{_BUF_SIZE}];",
        ]
        tables = self.tables()
        for k, dfa, classes in tables:
            out.append(f"\tu8 class{k}[256];\t/* clause {k}: byte -> its class */")
            out.append(f"\tu8 dfa{k}[{dfa.table_cells}];\t/* clause {k}: next state = "
                       f"dfa{k}[state * {len(classes)} + class] */")
        if tables:
            out.append("\tu8 dfas_ready;")
        out += ["};", f"BPF_PERCPU_ARRAY({self.fn}_scratch, struct {self.fn}_scratch_t, 1);"]
        return out

    def init_tables(self) -> list[str]:
        out = [
            "/* Writes the glob tables into this CPU's scratch map, where they stay. The map starts",
            " * zeroed, so class 0 needs no stores. */",
            f"static __always_inline void {self.fn}_init_dfas(struct {self.fn}_scratch_t *scratch)",
            "{",
        ]
        for n, (k, dfa, classes) in enumerate(self.tables()):
            if n:
                out.append("")
            out.append(f"\t/* clause {k}: byte classes */")
            for number, members in enumerate(classes[1:], 1):
                for lo, hi in _ranges(members):
                    if hi - lo < 2:
                        out += [f"\tscratch->class{k}[{_c_byte(b)}] = {number};"
                                for b in range(lo, hi + 1)]
                    else:
                        out += [f"\tfor (u32 c = {_c_byte(lo)}; c <= {_c_byte(hi)}; c++)",
                                f"\t\tscratch->class{k}[c] = {number};"]
            width = max(3, len(str(dfa.num_states)) + 1)
            header = "".join(f"{c:>{width}}" for c in range(len(classes)))
            out.append(f"\t/* clause {k}: next state by class{header} */")
            for state, row in enumerate(dfa.delta):
                cells = [row[cls[0]] for cls in classes]
                base = state * len(classes)
                stores = " ".join(f"scratch->dfa{k}[{base + i}] = {t};"
                                  for i, t in enumerate(cells) if t)
                shown = "".join(f"{t:>{width}}" for t in cells)
                out.append(f"\t{stores}\t/* state {state}:{shown} */" if stores
                           else f"\t/* state {state}:{shown} */")
        out += ["\tscratch->dfas_ready = 1;", "}"]
        return out

    def read_string(self, field: Field, j: int) -> list[str]:
        name = f"{self.fn}_read_s{j}"
        what = f"{comment_text(field.name)} ({comment_text(field.type)})"
        if field.kind is FieldKind.STRING:
            if field.size <= STRING_CAP:
                size, note = field.size + 1, f" * Returns its length: at most {field.size}, " \
                    "as the field may fill all its bytes without a NUL. */"
            else:
                size, note = _READ_SIZE, f" * Returns its length, or {STRING_CAP + 1} when " \
                    f"longer than the {STRING_CAP} bytes examined. */"
            return [
                f"/* Copies the string field {what} at offset {field.offset} into buf.",
                note,
                f"static __always_inline u32 {name}(void *ctx, u8 *buf)",
                "{",
                f"\tlong n = bpf_probe_read_kernel_str(buf, {size}, ctx + {field.offset});",
                "",
                "\treturn n > 0 ? n - 1 : 0;",
                "}",
            ]
        if field.kind is FieldKind.DYN_STRING:
            where, about = "ctx + (loc & 0xffff)", "offset from the record's start"
        else:  # REL_STRING
            where = f"ctx + {field.offset + 4} + (loc & 0xffff)"
            about = "offset from the end of the locator"
        return [
            f"/* Copies the string field {what} into buf; its locator at offset {field.offset}",
            f" * holds (size << 16 | {about}).",
            f" * Returns its length, or {STRING_CAP + 1} when longer than the {STRING_CAP} bytes "
            "examined. */",
            f"static __always_inline u32 {name}(void *ctx, u8 *buf)",
            "{",
            "\tlong n;",
            *self.int_load(field.offset, "u32", "loc"),
            "\tu32 size = loc >> 16;",
            "",
            f"\tn = bpf_probe_read_kernel_str(buf, {_READ_SIZE}, {where});",
            "\tif (n <= 0)",
            "\t\treturn 0;",
            "\tn -= 1;",
            "\t/* A payload without a NUL ends at its size. */",
            "\treturn n < size ? n : size;",
            "}",
        ]

    @staticmethod
    def int_load(offset: int, ctype: str, var: str, note: str = "") -> list[str]:
        size = int(ctype[1:]) // 8
        if offset % size == 0:
            # In asm, so that clang cannot compute ctx + offset once and share it between
            # clauses: the verifier accepts a context load only as ctx + a constant.
            raw = f"u{size * 8}"
            return [
                f"\t{raw} {var}_raw;{note}",
                "",
                f'\tasm volatile("%[raw] = *({raw} *)(%[ctx] + {offset})" : [raw] "=r"({var}_raw)'
                ' : [ctx] "r"(ctx));',
                f"\t{ctype} {var} = {var}_raw;",
            ]
        # The verifier refuses misaligned context loads (packed records): copy instead.
        return [f"\t{ctype} {var} = 0;{note}", "",
                f"\tbpf_probe_read_kernel(&{var}, sizeof({var}), ctx + {offset});"]

    def int_clause(self, k: int, t: IntTest) -> list[str]:
        f = t.field
        if t.source == "current_pid":
            load = [f"\t{t.ctype} v = ({t.ctype})bpf_get_current_pid_tgid();"
                    "\t/* the kernel stores this pid after BPF runs */"]
        elif t.source == "event_id":
            load = [f"\t{t.ctype} v = {self.fmt.id};\t/* this event's id */"]
        else:
            load = self.int_load(f.offset, t.ctype, "v",
                                 f"\t/* {comment_text(f.type + ' ' + f.name)} */")
        if t.op == "&":
            mask = t.value & ((1 << t.bits) - 1)
            test = f"(v & {c_int_literal(mask, False)}) != 0"
        else:
            test = f"v {t.op} {c_int_literal(t.value, t.signed)}"
        return [
            self.clause_comment(k, self.clause_text(t)),
            f"static __always_inline int {self.fn}_c{k}(void *ctx)",
            "{",
            *load,
            "",
            f"\treturn {test};",
            "}",
        ]

    def str_clause(self, k: int, t: StrTest) -> list[str]:
        read = f"{self.fn}_read_s{self.string_fields[t.field.name]}"
        head = [
            self.clause_comment(k, self.clause_text(t)),
            f"static __always_inline int {self.fn}_c{k}(void *ctx, "
            f"struct {self.fn}_scratch_t *scratch)",
            "{",
            "\tu8 *buf = scratch->buf;",
            f"\tu32 len = {read}(ctx, buf);",
        ]
        verdict = (f"len == {len(t.value)}", f"len != {len(t.value)}")
        if not t.value:
            return head + ["", f"\treturn {verdict[t.op == '!=']};", "}"]
        words = []
        for off in range(0, len(t.value), 8):
            chunk = t.value[off:off + 8]
            mask = (1 << (8 * len(chunk))) - 1
            word = int.from_bytes(chunk, "little")
            load = f"*(u64 *)(buf + {off})"
            if mask != (1 << 64) - 1:
                load = f"({load} & 0x{mask:016x}ULL)"
            shown = comment_text(chunk.decode("latin-1"))
            words.append(f"\tdiff |= {load} ^ 0x{word:016x}ULL;\t/* {shown} */")
        ret = (f"\treturn {verdict[0]} && diff == 0;" if t.op == "==" else
               f"\treturn {verdict[1]} || diff != 0;")
        return head + [
            "\tu64 diff = 0;",
            "",
            "\t/* The literal 8 bytes at a time (little-endian), the last word masked to its",
            "\t * length: one branch per clause keeps long literals within the verifier's",
            "\t * limit on branches per path. */",
            *words,
            ret,
            "}",
        ]

    def glob_clause(self, k: int, t: GlobTest) -> list[str]:
        read = f"{self.fn}_read_s{self.string_fields[t.field.name]}"
        tables = f"scratch->class{k}, scratch->dfa{k}" if _needs_table(t.dfa) else "0, 0"
        return self.glob_function(k, t.dfa) + [
            "",
            self.clause_comment(k, self.clause_text(t)),
            f"static __always_inline int {self.fn}_c{k}(void *ctx, "
            f"struct {self.fn}_scratch_t *scratch)",
            "{",
            f"\tu32 len = {read}(ctx, scratch->buf);",
            "",
            f"\treturn {self.fn}_glob{k}(scratch->buf, len, {tables});",
            "}",
        ]

    def glob_function(self, k: int, dfa: Dfa) -> list[str]:
        # Volatile: clang must not fold the tables' contents in on the path that wrote them.
        signature = (f"static __always_inline int {self.fn}_glob{k}(const u8 *s, u32 len,\n"
                     "\t\t\t\t\tconst volatile u8 *classes, const volatile u8 *next)")
        if not _needs_table(dfa):
            every = dfa.start == dfa.accept_all
            return [
                f"/* The glob of clause {k} matches {'every' if every else 'no'} string. */",
                signature,
                "{",
                f"\treturn {1 if every else 0};",
                "}",
            ]
        classes = dfa.classes
        first = dfa.first_accepting
        if first == dfa.num_states:
            accepting = "none accepting"
        elif first == dfa.num_states - 1:
            accepting = f"accepting {first}"
        else:
            accepting = f"accepting {first}..{dfa.num_states - 1}"
        facts = [f"start {dfa.start}", accepting]
        if dfa.dead is not None:
            facts.append(f"no match possible {dfa.dead}")
        if dfa.accept_all is not None:
            facts.append(f"match whatever follows {dfa.accept_all}")
        out = [
            f"/* The glob of clause {k} as a DFA of {dfa.num_states} states, stepped once per byte:",
            f" * {', '.join(facts)}; bytes fall into {len(classes)} classes. */",
            signature,
            "{",
            f"\tu32 state = {dfa.start};",
            "",
            f"\tfor (u32 i = 0; i < {STRING_CAP}; i++) {{",
            "\t\tif (i >= len)",
            "\t\t\tbreak;",
            "\t\t/* Opaque to clang, so it cannot turn s[i] into a pointer walk with a",
            "\t\t * separate count, whose bound the verifier loses. */",
            "\t\tasm volatile(\"\" : \"+r\"(i));",
        ]
        out += [
            "\t\t/* The mask changes nothing (states are below "
            f"{dfa.num_states}) but proves the index in bounds. */",
            f"\t\tstate = next[(state * {len(classes)} + classes[s[i]]) & "
            f"{dfa.table_cells - 1}];",
        ]
        if dfa.dead is not None:
            out += [f"\t\tif (state == {dfa.dead})\t/* no continuation can match */",
                    "\t\t\treturn 0;"]
        if dfa.accept_all is not None:
            out += [f"\t\tif (state == {dfa.accept_all})\t/* every continuation matches */",
                    "\t\t\treturn 1;"]
        out += [
            "\t}",
            f"\t/* Longer than the {STRING_CAP} bytes examined and still undecided: no match. */",
            f"\tif (len > {STRING_CAP})",
            "\t\treturn 0;",
            f"\treturn state >= {first};",
            "}",
        ]
        return out

    def main_function(self, tree: CheckedExpr) -> list[str]:
        body = self.expr(tree)
        if len(body) > 70 and isinstance(tree, (And, Or)):
            op = " &&" if isinstance(tree, And) else " ||"
            body = (op + "\n\t       ").join(self.expr(t, True) for t in tree.terms)
        out = [
            "/* Returns nonzero to keep the event. */",
            f"static __always_inline int {self.fn}(void *ctx)",
            "{",
        ]
        if self.string_fields:
            out += [
                "\tu32 zero = 0;",
                f"\tstruct {self.fn}_scratch_t *scratch = {self.fn}_scratch.lookup(&zero);",
                "",
                "\t/* Cannot fail for a per-CPU array; without it nothing can be tested. */",
                "\tif (!scratch)",
                "\t\treturn 0;",
            ]
            if self.tables():
                out += ["\tif (!scratch->dfas_ready)", f"\t\t{self.fn}_init_dfas(scratch);"]
        out += [f"\treturn {body};", "}"]
        return out

    def emit(self, tree: CheckedExpr) -> str:
        self.collect(tree)
        blocks: list[list[str]] = [self.header()]
        if self.string_fields:
            blocks.append(self.scratch())
            if self.tables():
                blocks.append(self.init_tables())
            for name, j in self.string_fields.items():
                field = self.fmt.field(name)
                assert field is not None
                blocks.append(self.read_string(field, j))
        for k, clause in enumerate(self.clauses):
            if isinstance(clause, IntTest):
                blocks.append(self.int_clause(k, clause))
            elif isinstance(clause, StrTest):
                blocks.append(self.str_clause(k, clause))
            else:
                blocks.append(self.glob_clause(k, clause))
        blocks.append(self.main_function(tree))
        return "\n\n".join("\n".join(b) for b in blocks) + "\n"


def emit_c(tree: CheckedExpr, fmt: EventFormat, src: FilterSource,
           fn_name: str) -> tuple[str, tuple[str, ...]]:
    """The C for a checked filter, and the names of the fields it reads (first use first)."""
    if not _C_IDENT.match(fn_name):
        raise ValueError(f"fn_name must be a C identifier, not {fn_name!r}")
    emitter = _Emitter(fmt, src, fn_name)
    code = emitter.emit(tree)
    return code, tuple(emitter.fields)
