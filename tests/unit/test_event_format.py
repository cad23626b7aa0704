"""tracefs format files → EventFormat: every captured fixture, every field kind, and bad input.

Fixtures are real format files captured from a 6.18 kernel (tests/fixtures/formats/); small
hand-written ones cover kinds no captured tracepoint has (__rel_loc, s8, struct members).
"""
from __future__ import annotations

from pathlib import Path

import pytest

import support

from ebpfprof.kernel.event_format import (
    DYNAMIC_KINDS, STRING_KINDS, EventFormat, Field, FieldKind, FormatError, parse_format,
)

# tests/conftest.py by path: with tests/kernel collected too, the name `conftest` is ambiguous.
fixture_format = support.fixture_format
FORMATS = support.FIXTURES / "formats"

ALL_FIXTURES = sorted(p.stem for p in FORMATS.glob("*.format"))
COMMON = [("common_type", 0, 2, False), ("common_flags", 2, 1, False),
          ("common_preempt_count", 3, 1, False), ("common_pid", 4, 4, True)]


def fmt_text(*fields: str, name: str = "ev", id: int = 7, print_fmt: str = '"x"') -> str:
    lines = [f"name: {name}", f"ID: {id}", "format:",
             "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;",
             "\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;",
             "\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;",
             "\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;", ""]
    lines += [f"\t{f}" for f in fields]
    lines += ["", f"print fmt: {print_fmt}", ""]
    return "\n".join(lines)


def test_there_are_fixtures():
    assert len(ALL_FIXTURES) >= 12


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_every_fixture_parses(name):
    text = (FORMATS / f"{name}.format").read_text()
    fmt = fixture_format(name)
    system = name.split("_", 1)[0]
    assert fmt.system == system
    assert fmt.full_name == f"{system}:{fmt.name}"
    assert name == f"{system}_{fmt.name}"
    assert fmt.id > 0 and f"ID: {fmt.id}\n" in text
    assert fmt.text == text
    assert fmt.print_fmt and text.rstrip("\n").endswith("print fmt: " + fmt.print_fmt)
    # the common header, exactly as the kernel lays it out
    assert [(f.name, f.offset, f.size, f.signed) for f in fmt.fields[:4]] == COMMON
    assert all(f.kind is FieldKind.INT for f in fmt.fields[:4])
    assert fmt.own_fields == fmt.fields[4:]
    assert not any(f.is_common for f in fmt.own_fields)
    assert len(fmt.fields) == text.count("\tfield:")
    # fields do not overlap and come in offset order
    ends = [(f.offset, f.offset + f.size) for f in fmt.fields]
    assert all(a[1] <= b[0] for a, b in zip(ends, ends[1:])), ends
    assert fmt.fixed_size == ends[-1][1]
    assert fmt.has_dynamic == ("__data_loc" in text or "__rel_loc" in text)


def test_sched_wakeup_fields():
    fmt = fixture_format("sched_sched_wakeup")
    assert (fmt.system, fmt.name, fmt.id) == ("sched", "sched_wakeup", 374)
    assert fmt.fixed_size == 36 and not fmt.has_dynamic
    assert [(f.name, f.type, f.offset, f.size, f.signed, f.kind) for f in fmt.own_fields] == [
        ("comm", "char[16]", 8, 16, False, FieldKind.STRING),
        ("pid", "pid_t", 24, 4, True, FieldKind.INT),
        ("prio", "int", 28, 4, True, FieldKind.INT),
        ("target_cpu", "int", 32, 4, True, FieldKind.INT),
    ]
    comm = fmt.field("comm")
    assert (comm.elem_type, comm.array_len, comm.python_type) == ("char", 16, "str")
    assert fmt.field("pid").python_type == "int"
    assert fmt.field("nope") is None
    assert fmt.print_fmt == ('"comm=%s pid=%d prio=%d target_cpu=%03d", REC->comm, REC->pid, REC->prio, '
                             'REC->target_cpu')


def test_data_loc_string():
    fmt = fixture_format("sched_sched_process_exec")
    f = fmt.field("filename")
    assert (f.type, f.offset, f.size, f.kind, f.elem_type) == ("__data_loc char[]", 8, 4, FieldKind.DYN_STRING, "char")
    assert f.python_type == "str"
    assert fmt.has_dynamic and fmt.fixed_size == 20


def test_data_loc_arrays_and_bool():
    fmt = fixture_format("dma_dma_map_sg")
    kinds = {f.name: (f.type, f.kind, f.python_type) for f in fmt.own_fields}
    assert kinds["device"] == ("__data_loc char[]", FieldKind.DYN_STRING, "str")
    assert kinds["phys_addrs"] == ("__data_loc u64[]", FieldKind.DYN_ARRAY, "bytes")
    assert kinds["lengths"] == ("__data_loc unsigned int[]", FieldKind.DYN_ARRAY, "bytes")
    assert kinds["truncated"] == ("bool", FieldKind.INT, "int")
    assert kinds["dir"] == ("enum dma_data_direction", FieldKind.INT, "int")
    assert kinds["attrs"] == ("unsigned long", FieldKind.INT, "int")
    assert fmt.field("truncated").size == 1 and not fmt.field("truncated").signed
    assert fmt.fixed_size == 48


def test_integer_sizes_and_signedness():
    fmt = fixture_format("bridge_br_fdb_add")
    f = {x.name: x for x in fmt.own_fields}
    assert (f["ndm_flags"].size, f["ndm_flags"].signed, f["ndm_flags"].kind) == (1, False, FieldKind.INT)
    assert (f["vid"].type, f["vid"].size, f["vid"].signed) == ("u16", 2, False)
    short = fixture_format("oom_oom_score_adj_update").field("oom_score_adj")
    assert (short.type, short.size, short.signed, short.kind) == ("short", 2, True, FieldKind.INT)
    long_ = fixture_format("sched_sched_switch").field("prev_state")
    assert (long_.type, long_.size, long_.signed) == ("long", 8, True)
    ptr = fixture_format("syscalls_sys_enter_openat").field("filename")
    assert (ptr.type, ptr.size, ptr.signed, ptr.kind) == ("const char *", 8, False, FieldKind.INT)
    s64 = fixture_format("timer_hrtimer_start").field("expires")
    assert (s64.type, s64.size, s64.signed) == ("s64", 8, True)


def test_byte_arrays_are_bytes():
    fmt = fixture_format("bridge_br_mdb_full")
    src = fmt.field("src")
    assert (src.type, src.offset, src.size, src.kind, src.elem_type, src.array_len) == (
        "__u8[16]", 18, 16, FieldKind.ARRAY, "__u8", 16)
    assert src.python_type == "bytes"
    assert fmt.field("grpmac").array_len == 6
    assert fmt.field("dev").kind is FieldKind.DYN_STRING


def test_hand_written_kinds():
    fmt = parse_format(fmt_text(
        "field:s8 neg;\toffset:8;\tsize:1;\tsigned:1;",
        "field:__rel_loc char[] rs;\toffset:12;\tsize:4;\tsigned:0;",
        "field:__rel_loc u8[] rb;\toffset:16;\tsize:4;\tsigned:0;",
        "field:char comm[TASK_COMM_LEN];\toffset:20;\tsize:16;\tsigned:0;",
        "field:struct foo bar;\toffset:36;\tsize:12;\tsigned:0;",
        "field:u32 arr[4];\toffset:48;\tsize:16;\tsigned:0;",
        "field:unsigned long long big;\toffset:64;\tsize:8;\tsigned:0;",
    ), system="test")
    f = {x.name: x for x in fmt.own_fields}
    assert (f["neg"].kind, f["neg"].signed, f["neg"].python_type) == (FieldKind.INT, True, "int")
    assert (f["rs"].type, f["rs"].kind, f["rs"].python_type) == ("__rel_loc char[]", FieldKind.REL_STRING, "str")
    assert (f["rb"].type, f["rb"].kind, f["rb"].python_type) == ("__rel_loc u8[]", FieldKind.REL_ARRAY, "bytes")
    # a length spelled as a macro: the size still says how many bytes
    assert (f["comm"].type, f["comm"].kind, f["comm"].array_len, f["comm"].size) == (
        "char[TASK_COMM_LEN]", FieldKind.STRING, 0, 16)
    assert (f["bar"].type, f["bar"].kind, f["bar"].python_type) == ("struct foo", FieldKind.OTHER, "bytes")
    assert (f["arr"].kind, f["arr"].elem_type, f["arr"].array_len) == (FieldKind.ARRAY, "u32", 4)
    assert f["big"].type == "unsigned long long"
    assert fmt.has_dynamic and fmt.fixed_size == 72
    assert fmt.system == "test" and fmt.full_name == "test:ev"


def test_signed_column_may_be_missing():
    fmt = parse_format(fmt_text("field:int a;\toffset:8;\tsize:4;"))
    assert fmt.field("a").signed is False and fmt.field("a").kind is FieldKind.INT


def test_kind_sets():
    assert STRING_KINDS == {FieldKind.STRING, FieldKind.DYN_STRING, FieldKind.REL_STRING}
    assert DYNAMIC_KINDS == {FieldKind.DYN_STRING, FieldKind.DYN_ARRAY, FieldKind.REL_STRING, FieldKind.REL_ARRAY}


def test_fixed_only_format_has_no_dynamic():
    for name in ("sched_sched_switch", "signal_signal_generate", "syscalls_sys_exit_getppid", "timer_hrtimer_start"):
        assert not fixture_format(name).has_dynamic, name


def test_fields_are_frozen():
    f = fixture_format("sched_sched_wakeup").field("pid")
    with pytest.raises(Exception):
        f.offset = 0  # type: ignore[misc]
    assert isinstance(f, Field)


def test_format_equality_ignores_the_text():
    a = parse_format(fmt_text("field:int a;\toffset:8;\tsize:4;\tsigned:1;"), "s")
    b = parse_format(fmt_text("field:int   a;\toffset:8;\tsize:4;\tsigned:1;") + "\n\n", "s")
    assert a == b and a.text != b.text
    assert isinstance(a, EventFormat)


@pytest.mark.parametrize("text, message", [
    ("", "no 'name:' line"),
    ("ID: 1\nformat:\n\tfield:int a;\toffset:8;\tsize:4;\tsigned:1;\n", "no 'name:' line"),
    ("name: x\nID: 1\nformat:\n", "x: no fields"),
    ("name: x\nID: abc\nformat:\n\tfield:int a;\toffset:8;\tsize:4;\tsigned:1;\n",
     "line 2: ID is not a number: 'ID: abc'"),
    ("name: x\nID: 1\nformat:\n\tfield:int a;\toffset:x;\tsize:4;\n",
     "line 4: cannot read field line 'field:int a;\\toffset:x;\\tsize:4;'"),
    ("name: x\nID: 1\nformat:\n\tfield:;\toffset:8;\tsize:4;\tsigned:1;\n",
     "line 4: cannot read field declaration ''"),
    ("name: x\nID: 1\nformat:\n\tfield:__data_loc char[] ;\toffset:8;\tsize:4;\tsigned:0;\n",
     "line 4: cannot read field declaration 'char[]'"),
])
def test_bad_input_raises_format_error(text, message):
    with pytest.raises(FormatError) as info:
        parse_format(text)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)
