"""Shared by the filter tests: format fixtures, a generator of valid filters, and the reference
semantics those filters are meant to have.

A generated filter is a small tree of the test's own (``Cmp``/``AndT``/``OrT``/``NotT``), rendered to
text with random spacing and parentheses. ``evaluate`` gives its meaning on a record without using
ebpfprof's parser or code generator, so comparing it with the emitted C (test_filter_semantics) or
checking the kernel accepts it (tests/kernel) tests the whole pipeline.
"""
from __future__ import annotations

import fnmatch
import pathlib
import random
import struct
from dataclasses import dataclass
from typing import Union

from hypothesis import strategies as st

from ebpfprof.lang.filter import STRING_CAP
from ebpfprof.lang.filter.glob import compile_glob
from ebpfprof.kernel.event_format import EventFormat, Field, FieldKind, parse_format

ROOT = pathlib.Path(__file__).resolve().parents[2]
FORMATS = ROOT / "tests" / "fixtures" / "formats"

# A made-up event with what the captured ones lack: 1/2/8-byte ints of both signs, a misaligned
# u32, a __rel_loc string, a char[] shorter and one longer than the string cap.
SYNTH_FORMAT = """\
name: synth
ID: 4242
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:s8 s8v;\toffset:8;\tsize:1;\tsigned:1;
\tfield:u8 u8v;\toffset:9;\tsize:1;\tsigned:0;
\tfield:s16 s16v;\toffset:10;\tsize:2;\tsigned:1;
\tfield:u16 u16v;\toffset:12;\tsize:2;\tsigned:0;
\tfield:u32 odd32;\toffset:14;\tsize:4;\tsigned:0;
\tfield:u64 u64v;\toffset:24;\tsize:8;\tsigned:0;
\tfield:s64 s64v;\toffset:32;\tsize:8;\tsigned:1;
\tfield:char tiny[4];\toffset:40;\tsize:4;\tsigned:0;
\tfield:__data_loc char[] dname;\toffset:44;\tsize:4;\tsigned:0;
\tfield:__rel_loc char[] rname;\toffset:48;\tsize:4;\tsigned:0;
\tfield:char big[200];\toffset:52;\tsize:200;\tsigned:0;
\tfield:u8 arr[4];\toffset:252;\tsize:4;\tsigned:0;
\tfield:int ifindex;\toffset:256;\tsize:4;\tsigned:1;

print fmt: "s8v=%d", REC->s8v
"""


def load_format(name: str) -> EventFormat:
    """A fixture format by file stem (``sched_sched_wakeup``), or ``synth``."""
    if name == "synth":
        return parse_format(SYNTH_FORMAT, "test")
    system = name.split("_", 1)[0]
    return parse_format((FORMATS / f"{name}.format").read_text(), system)


def ctype_range(f: Field) -> tuple[int, int]:
    bits = f.size * 8
    if f.signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def filterable(fmt: EventFormat) -> list[Field]:
    """Fields a generated filter may use (common_flags/preempt_count are refused by design)."""
    out = []
    for f in fmt.fields:
        if f.name in ("common_flags", "common_preempt_count"):
            continue
        if f.kind is FieldKind.INT or f.kind in (FieldKind.STRING, FieldKind.DYN_STRING,
                                                 FieldKind.REL_STRING):
            out.append(f)
    return out


# -- the reference tree --------------------------------------------------------------------------
@dataclass(frozen=True)
class Cmp:
    field: Field
    op: str
    value: Union[int, bytes]
    glob_ref: bytes = b""   # for '~': the same glob in fnmatch's spelling ([^ → [!)


@dataclass(frozen=True)
class AndT:
    terms: tuple


@dataclass(frozen=True)
class OrT:
    terms: tuple


@dataclass(frozen=True)
class NotT:
    operand: object


Tree = Union[Cmp, AndT, OrT, NotT]

STR_ALPHABET = b"ab/.x"
_GLOB_PIECES = [  # (as written in the filter, as fnmatch spells it)
    (b"a", b"a"), (b"b", b"b"), (b"/", b"/"), (b".", b"."), (b"*", b"*"), (b"?", b"?"),
    (b"[ab]", b"[ab]"), (b"[!a]", b"[!a]"), (b"[^b/]", b"[!b/]"), (b"[a-c]", b"[a-c]"),
    (b"[!.-/]", b"[!.-/]"), (b"[]a]", b"[]a]"),
]


def _c_string(value: bytes) -> str:
    """A filter-language string literal for ``value`` using every escape now and then."""
    out = ['"']
    for b in value:
        ch = chr(b)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif 0x20 <= b < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\x{b:02x}")
    out.append('"')
    return "".join(out)


def _int_text(v: int, rnd: random.Random) -> str:
    if v >= 0 and rnd.random() < 0.3:
        return hex(v)
    return str(v)


def _ws(rnd: random.Random) -> str:
    return rnd.choice(["", " ", " ", "  ", "\t", "\n "])


def render(tree: Tree, rnd: random.Random, nested: bool = False) -> str:
    """Filter text for ``tree``, parenthesized where precedence needs it (and sometimes not)."""
    if isinstance(tree, Cmp):
        if tree.op == "~" or isinstance(tree.value, bytes):
            value = _c_string(tree.value)  # type: ignore[arg-type]
        else:
            value = _int_text(tree.value, rnd)  # type: ignore[arg-type]
        text = f"{tree.field.name}{_ws(rnd)}{tree.op}{_ws(rnd)}{value}"
        return f"({_ws(rnd)}{text}{_ws(rnd)})" if rnd.random() < 0.1 else text
    if isinstance(tree, NotT):
        inner = render(tree.operand, rnd, nested=True)
        # '!' binds tighter than && and ||, so only a comparison or another '!' may go bare.
        if not isinstance(tree.operand, (Cmp, NotT)) or rnd.random() < 0.3:
            inner = f"({inner})"
        return f"!{_ws(rnd)}{inner}"
    op = "&&" if isinstance(tree, AndT) else "||"
    parts = []
    for t in tree.terms:
        text = render(t, rnd, nested=True)
        # '||' inside '&&' needs parentheses; anything else only sometimes gets them.
        if (isinstance(tree, AndT) and isinstance(t, OrT)) or (
                isinstance(t, (AndT, OrT)) and rnd.random() < 0.5):
            text = f"({text})"
        parts.append(text)
    return f"{_ws(rnd)}{op}{_ws(rnd)}".join(parts)


@st.composite
def comparisons(draw, fmt: EventFormat) -> Cmp:
    f = draw(st.sampled_from(filterable(fmt)))
    if f.kind is FieldKind.INT:
        lo, hi = ctype_range(f)
        op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "&"]))
        if op == "&":
            value = draw(st.one_of(st.sampled_from([1, 2, 0x80, hi]),
                                   st.integers(0, (1 << (f.size * 8)) - 1)))
        else:
            value = draw(st.one_of(st.sampled_from(sorted({lo, hi, 0, 1, max(lo, -1)})),
                                   st.integers(lo, hi), st.integers(max(lo, -300), min(hi, 300))))
        return Cmp(f, op, value)
    op = draw(st.sampled_from(["==", "!=", "~"]))
    if op == "~":
        pieces = draw(st.lists(st.sampled_from(_GLOB_PIECES), max_size=6))
        return Cmp(f, op, b"".join(p[0] for p in pieces), b"".join(p[1] for p in pieces))
    limit = min(f.size, 12) if f.kind is FieldKind.STRING else 12
    return Cmp(f, op, draw(st.binary(max_size=limit).map(
        lambda b: bytes(STR_ALPHABET[x % len(STR_ALPHABET)] for x in b))))


def trees(fmt: EventFormat, max_leaves: int = 8):
    """Random valid filter trees over ``fmt``."""
    def extend(children):
        return st.one_of(
            st.lists(children, min_size=2, max_size=3).map(lambda ts: AndT(tuple(ts))),
            st.lists(children, min_size=2, max_size=3).map(lambda ts: OrT(tuple(ts))),
            children.map(NotT),
        )
    return st.recursive(comparisons(fmt), extend, max_leaves=max_leaves)


@st.composite
def filters(draw, fmt: EventFormat, max_leaves: int = 8) -> tuple[str, Tree]:
    """(filter text, reference tree) pairs."""
    tree = draw(trees(fmt, max_leaves))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    return render(tree, random.Random(seed)), tree


# -- records and their meaning --------------------------------------------------------------------
@dataclass
class Record:
    """A raw tracepoint record as the kernel lays it out, plus the current pid."""

    data: bytes
    pid: int

    def __repr__(self) -> str:
        return f"Record(pid={self.pid}, data={self.data.rstrip(bytes(1)).hex()})"


def _int_bytes(f: Field, value: int) -> bytes:
    return (value & ((1 << (f.size * 8)) - 1)).to_bytes(f.size, "little")


def make_record(fmt: EventFormat, rnd: random.Random) -> Record:
    """A random record of ``fmt`` whose strings often resemble the generated literals."""
    fixed = bytearray(rnd.randbytes(fmt.fixed_size))
    tail = bytearray()

    def string() -> bytes:
        if rnd.random() < 0.2:  # around the cap
            n = rnd.randint(STRING_CAP - 2, STRING_CAP + 30)
        else:
            n = rnd.randint(0, 20)
        alphabet = STR_ALPHABET + (b"\x7f\xc3" if rnd.random() < 0.2 else b"")
        return bytes(rnd.choice(alphabet) for _ in range(n))

    for f in fmt.fields:
        if f.kind is FieldKind.INT:
            lo, hi = ctype_range(f)
            v = rnd.choice([lo, hi, 0, 1, lo + 1, rnd.randint(lo, hi), rnd.randint(-300, 300)])
            fixed[f.offset:f.offset + f.size] = _int_bytes(f, v)
        elif f.kind is FieldKind.STRING:
            s = string()[:f.size]
            # Bytes after the NUL are garbage on purpose: only those before it count.
            fixed[f.offset:f.offset + f.size] = (s + b"\0" + rnd.randbytes(f.size))[:f.size]
        elif f.kind in (FieldKind.DYN_STRING, FieldKind.REL_STRING):
            s = string()
            how = rnd.choice(["nul", "nul", "nul", "no_nul", "short"])
            start = fmt.fixed_size + len(tail)
            if how == "nul":
                payload, size = s + b"\0", len(s) + 1
            elif how == "no_nul":  # the size ends the string; what follows must not be read
                payload, size = s + b"zz\0", len(s)
            else:  # a size shorter than the NUL-terminated bytes
                payload, size = s + b"\0", rnd.randint(0, len(s) + 1)
            tail += payload
            rel = start if f.kind is FieldKind.DYN_STRING else start - (f.offset + 4)
            fixed[f.offset:f.offset + 4] = struct.pack("<I", (size << 16) | rel)
    pid = rnd.choice([0, 1, 4242, rnd.randint(-(1 << 31), (1 << 31) - 1)])
    # Zero padding after the record keeps the C side's string reads inside the buffer.
    return Record(bytes(fixed) + bytes(tail) + bytes(STRING_CAP + 8), pid)


def records(fmt: EventFormat):
    """Random records, drawn from a seed so that hypothesis keeps its own data small."""
    return st.integers(0, 2 ** 32 - 1).map(lambda seed: make_record(fmt, random.Random(seed)))


def field_value(fmt: EventFormat, f: Field, rec: Record) -> Union[int, bytes]:
    """The value a filter sees, decoded without ebpfprof's help."""
    d = rec.data
    if f.name == "common_pid":
        return rec.pid
    if f.name == "common_type":
        return fmt.id
    if f.kind is FieldKind.INT:
        return int.from_bytes(d[f.offset:f.offset + f.size], "little", signed=f.signed)
    if f.kind is FieldKind.STRING:
        raw = d[f.offset:f.offset + f.size]
        return raw.split(b"\0", 1)[0]
    loc = struct.unpack_from("<I", d, f.offset)[0]
    start = loc & 0xFFFF
    if f.kind is FieldKind.REL_STRING:
        start += f.offset + 4
    return d[start:].split(b"\0", 1)[0][:loc >> 16]


def glob_reference(pattern_fnmatch: bytes, pattern: bytes, value: bytes) -> bool:
    """A glob's intended result: fnmatch on whole strings within the cap. Longer strings match
    only if their first STRING_CAP bytes decide it, which is the DFA's accept-all state
    (test_filter_glob checks that state against fnmatch)."""
    if len(value) <= STRING_CAP:
        return fnmatch.fnmatchcase(value, pattern_fnmatch)
    dfa = compile_glob(pattern)
    state = dfa.start
    for b in value[:STRING_CAP]:
        state = dfa.delta[state][b]
        if state == dfa.accept_all:
            return True
    return False


def evaluate(tree: Tree, fmt: EventFormat, rec: Record) -> bool:
    """The reference meaning of a generated filter on one record."""
    if isinstance(tree, AndT):
        return all(evaluate(t, fmt, rec) for t in tree.terms)
    if isinstance(tree, OrT):
        return any(evaluate(t, fmt, rec) for t in tree.terms)
    if isinstance(tree, NotT):
        return not evaluate(tree.operand, fmt, rec)
    v = field_value(fmt, tree.field, rec)
    lit = tree.value
    if isinstance(v, bytes):
        assert isinstance(lit, bytes)
        if tree.op == "==":
            return v == lit
        if tree.op == "!=":
            return v != lit
        return glob_reference(tree.glob_ref, lit, v)
    assert isinstance(lit, int)
    if tree.op == "&":
        bits = (1 << (tree.field.size * 8)) - 1
        return (v & bits & lit & bits) != 0
    return {"==": v == lit, "!=": v != lit, "<": v < lit, "<=": v <= lit,
            ">": v > lit, ">=": v >= lit}[tree.op]


# -- a self-check of the generator ----------------------------------------------------------------
def test_generated_filters_parse_to_the_intended_fields():
    from hypothesis import given, settings

    from ebpfprof.lang.filter import compile_filter

    fmt = load_format("sched_sched_wakeup")

    @settings(max_examples=50, deadline=None)
    @given(filters(fmt))
    def check(pair):
        text, tree = pair
        cf = compile_filter(text, fmt, selector="sched:sched_wakeup", fn_name="f")
        names = set()

        def walk(t):
            if isinstance(t, Cmp):
                names.add(t.field.name)
            elif isinstance(t, NotT):
                walk(t.operand)
            else:
                for x in t.terms:
                    walk(x)
        walk(tree)
        assert set(cf.fields) == names

    check()


# -- what generated C may contain -----------------------------------------------------------------
import re as _re  # noqa: E402

# Every identifier the emitter may write outside comments, besides names starting with fn_name.
C_VOCABULARY = frozenset("""
    static __always_inline int void u8 u16 u32 u64 s8 s16 s32 s64 long struct return if else for
    break const volatile asm sizeof ctx buf scratch zero len loc size n v t i state s classes next
    diff raw v_raw loc_raw lookup dfas_ready bpf_probe_read_kernel bpf_probe_read_kernel_str bpf_get_current_pid_tgid
    BPF_PERCPU_ARRAY r c
""".split())
_C_TOKEN = _re.compile(r"""
      (?P<comment>/\*.*?\*/)
    | (?P<char>'[ -&(-\[\]-~]')
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<number>0x[0-9a-f]+(ULL)?|\d+(ULL|LL)?)
    | (?P<asm>""|"\+r"|"=r"|"r"|"%\[raw\]\ =\ \*\(u(8|16|32|64)\ \*\)\(%\[ctx\]\ \+\ \d+\)")
    | (?P<punct>->|<<|>>|<=|>=|==|!=|&&|\|\||\+\+|-=|[-+*/%&|^!~<>=?:;,.(){}\[\]])
    | (?P<space>\s+)
""", _re.VERBOSE | _re.DOTALL)


def assert_no_injection(c_code: str, fn_name: str) -> None:
    """Tokenize ``c_code`` as C: only comments, whitelisted characters constants, numbers, known
    identifiers (or ones starting with fn_name) and punctuation may appear — no string literals,
    no preprocessor lines, no identifier a user could have chosen."""
    pos = 0
    while pos < len(c_code):
        m = _C_TOKEN.match(c_code, pos)
        assert m, f"unexpected C at {pos}: {c_code[pos:pos + 40]!r}"
        kind = m.lastgroup
        text = m.group()
        if kind == "comment":
            body = text[2:-2]
            assert "/*" not in body, text
        elif kind == "ident":
            assert text in C_VOCABULARY or text == fn_name or text.startswith(fn_name + "_") \
                or _re.fullmatch(r"(dfa|class)\d+", text), f"identifier {text!r} in the C"
        pos = m.end()
