"""Tracepoint record layouts, parsed from tracefs ``format`` files.

A format file describes one tracepoint's raw record::

    name: sched_wakeup
    ID: 374
    format:
        field:unsigned short common_type;  offset:0;  size:2;  signed:0;
        ...
        field:char comm[16];  offset:8;  size:16;  signed:0;
        field:__data_loc char[] filename;  offset:8;  size:4;  signed:0;

    print fmt: "comm=%s pid=%d ...", REC->comm, REC->pid, ...

Parsing is pure (no kernel needed): ``parse_format(text)`` → ``EventFormat``.
Where the file lives and how tracefs is mounted is ``tracefs.py``'s job.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field as dc_field

__all__ = ["FieldKind", "Field", "EventFormat", "FormatError", "parse_format"]


class FormatError(ValueError):
    """A format file that does not follow the tracefs layout."""


class FieldKind(enum.Enum):
    """How a field's bytes become a Python value."""

    INT = "int"                  # 1/2/4/8-byte integer (signedness from `signed:`)
    STRING = "str"               # char[N], NUL-terminated inside N bytes
    DYN_STRING = "dyn_str"       # __data_loc char[]: u32 (len << 16 | offset) → bytes in the record
    ARRAY = "bytes"              # any other fixed array, e.g. u8 addr[16]
    DYN_ARRAY = "dyn_bytes"      # __data_loc T[] (T not char)
    REL_STRING = "rel_str"       # __rel_loc char[]: offset is relative to the end of the field
    REL_ARRAY = "rel_bytes"      # __rel_loc T[]
    OTHER = "other"              # odd sizes (packed structs): exposed as bytes


# Kinds whose Python value is a str.
STRING_KINDS = frozenset({FieldKind.STRING, FieldKind.DYN_STRING, FieldKind.REL_STRING})
# Kinds whose payload lives behind a u32 locator in the fixed part of the record.
DYNAMIC_KINDS = frozenset({FieldKind.DYN_STRING, FieldKind.DYN_ARRAY,
                           FieldKind.REL_STRING, FieldKind.REL_ARRAY})

# "unsigned char" arrays hold bytes (MAC addresses, hashes), not text.
_CHAR_TYPES = frozenset({"char", "signed char", "const char"})


@dataclass(frozen=True)
class Field:
    """One field of a tracepoint record, as the format file declares it."""

    name: str
    type: str            # the C declaration minus the name: "pid_t", "char[16]", "__data_loc char[]"
    offset: int
    size: int            # bytes in the fixed part (4 for __data_loc locators)
    signed: bool
    kind: FieldKind
    elem_type: str = ""  # for arrays: element C type ("char", "u64")
    array_len: int = 0   # for fixed arrays: N in T[N]

    @property
    def is_common(self) -> bool:
        return self.name.startswith("common_")

    @property
    def python_type(self) -> str:
        """The type a script sees: 'int', 'str' or 'bytes'."""
        if self.kind is FieldKind.INT:
            return "int"
        if self.kind in STRING_KINDS:
            return "str"
        return "bytes"


@dataclass(frozen=True)
class EventFormat:
    """A tracepoint's id, fields and print format."""

    system: str
    name: str
    id: int
    fields: tuple[Field, ...]
    print_fmt: str
    text: str = dc_field(repr=False, compare=False, default="")

    @property
    def full_name(self) -> str:
        return f"{self.system}:{self.name}"

    def field(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    @property
    def own_fields(self) -> tuple[Field, ...]:
        """The event's fields without the common_* header."""
        return tuple(f for f in self.fields if not f.is_common)

    @property
    def fixed_size(self) -> int:
        """Bytes of the record before any __data_loc payload."""
        return max((f.offset + f.size for f in self.fields), default=0)

    @property
    def has_dynamic(self) -> bool:
        return any(f.kind in DYNAMIC_KINDS for f in self.fields)


_FIELD_RE = re.compile(
    r"^\s*field:(?P<decl>[^;]*);\s*offset:(?P<offset>\d+);\s*size:(?P<size>\d+);"
    r"(?:\s*signed:(?P<signed>\d+);)?"
)
_ARRAY_RE = re.compile(r"^(?P<type>.*?)\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*\[(?P<len>[^\]]*)\]$")
_NAME_RE = re.compile(r"^(?P<type>.*?)\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)$")


def _parse_field(decl: str, offset: int, size: int, signed: bool, lineno: int) -> Field:
    decl = " ".join(decl.split())
    loc = ""
    for prefix in ("__data_loc ", "__rel_loc "):
        if decl.startswith(prefix):
            loc, decl = prefix.strip(), decl[len(prefix):]
            break

    if loc:
        # "__data_loc char[] filename": the brackets follow the type, not the name.
        m = re.match(r"^(?P<type>.*?)\s*\[\s*\]\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)$", decl)
        if not m:
            m = _NAME_RE.match(decl)
            if not m:
                raise FormatError(f"line {lineno}: cannot read field declaration {decl!r}")
        elem = m.group("type").strip()
        is_str = elem in _CHAR_TYPES
        if loc == "__data_loc":
            kind = FieldKind.DYN_STRING if is_str else FieldKind.DYN_ARRAY
        else:
            kind = FieldKind.REL_STRING if is_str else FieldKind.REL_ARRAY
        return Field(m.group("name"), f"{loc} {elem}[]", offset, size, signed, kind, elem_type=elem)

    m = _ARRAY_RE.match(decl)
    if m:
        elem = m.group("type").strip()
        length_text = m.group("len").strip()
        try:
            length = int(length_text, 0)
        except ValueError:
            # Some formats spell the length as a macro (e.g. TASK_COMM_LEN); the size says it all.
            length = 0
        kind = FieldKind.STRING if elem in _CHAR_TYPES else FieldKind.ARRAY
        return Field(m.group("name"), f"{elem}[{length_text}]", offset, size, signed, kind,
                     elem_type=elem, array_len=length)

    m = _NAME_RE.match(decl)
    if not m:
        raise FormatError(f"line {lineno}: cannot read field declaration {decl!r}")
    kind = FieldKind.INT if size in (1, 2, 4, 8) else FieldKind.OTHER
    return Field(m.group("name"), m.group("type").strip(), offset, size, signed, kind)


def parse_format(text: str, system: str = "") -> EventFormat:
    """Parse the text of an ``events/SYS/NAME/format`` file.

    >>> fmt = parse_format(open("tests/fixtures/formats/sched_sched_wakeup.format").read(), "sched")
    >>> fmt.field("comm")
    Field(name='comm', type='char[16]', offset=8, size=16, signed=False, kind=<FieldKind.STRING: 'str'>, ...)
    """
    name = ""
    event_id = -1
    fields: list[Field] = []
    print_fmt = ""
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("name:"):
            name = stripped[5:].strip()
        elif stripped.startswith("ID:"):
            try:
                event_id = int(stripped[3:].strip())
            except ValueError:
                raise FormatError(f"line {lineno}: ID is not a number: {stripped!r}") from None
        elif stripped.startswith("field:"):
            m = _FIELD_RE.match(stripped)
            if not m:
                raise FormatError(f"line {lineno}: cannot read field line {stripped!r}")
            fields.append(_parse_field(m.group("decl"), int(m.group("offset")), int(m.group("size")),
                                       m.group("signed") == "1", lineno))
        elif stripped.startswith("print fmt:"):
            print_fmt = stripped[len("print fmt:"):].strip()
    if not name:
        raise FormatError("no 'name:' line")
    if not fields:
        raise FormatError(f"{name}: no fields")
    return EventFormat(system, name, event_id, tuple(fields), print_fmt, text)
