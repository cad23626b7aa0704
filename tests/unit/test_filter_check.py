"""Typecheck against event formats: field lookup, types, ranges, header fields, ifindex names."""
from __future__ import annotations

import pytest

from ebpfprof.lang.filter import STRING_CAP, FilterError, compile_filter
from ebpfprof.lang.filter.ast import And, FilterSource, Not
from ebpfprof.lang.filter.check import GlobTest, IntTest, StrTest, check, is_ifindex_field
from ebpfprof.lang.filter.parser import parse
from test_filter_gen import load_format

WAKEUP = load_format("sched_sched_wakeup")
EXEC = load_format("sched_sched_process_exec")
OPENAT = load_format("syscalls_sys_enter_openat")
SYNTH = load_format("synth")
DMA = load_format("dma_dma_map_sg")


def checked(text: str, fmt=WAKEUP, **kw):
    src = FilterSource(text, fmt.full_name)
    return check(parse(src), fmt, src, **kw)


def check_error(text: str, fmt=WAKEUP, **kw) -> FilterError:
    with pytest.raises(FilterError) as info:
        checked(text, fmt, **kw)
    return info.value


def test_int_test_types_come_from_the_format():
    t = checked("pid > 100")
    assert isinstance(t, IntTest)
    assert (t.field.name, t.op, t.value, t.ctype, t.source) == ("pid", ">", 100, "s32", "record")
    assert checked("common_type == 1").ctype == "u16"
    assert checked("u8v == 255", SYNTH).ctype == "u8"
    assert checked("s16v == -5", SYNTH).ctype == "s16"
    assert checked("u64v == 18446744073709551615", SYNTH).ctype == "u64"
    # The format's size and sign win over the C type name: syscall args are u64 slots.
    assert checked("dfd == 5", OPENAT).ctype == "u64"


def test_string_and_glob_tests():
    t = checked('comm == "bash"')
    assert isinstance(t, StrTest) and t.value == b"bash"
    g = checked('filename ~ "*/tru?"', EXEC)
    assert isinstance(g, GlobTest) and g.dfa.matches(b"/bin/true")
    r = checked('rname != "x"', SYNTH)
    assert isinstance(r, StrTest) and r.op == "!="


def test_structure_is_kept():
    t = checked('pid == 1 && !(comm == "a")')
    assert isinstance(t, And) and isinstance(t.terms[1], Not)


def test_unknown_field_lists_fields_and_suggests():
    err = check_error("pidd == 1")
    assert err.message == "sched:sched_wakeup filter 'pidd == 1': unknown field 'pidd' at column 1"
    assert err.hint == "did you mean 'pid'?"
    assert err.detail == (
        "    pidd == 1\n"
        "    ^~~~\n"
        "    fields of sched:sched_wakeup: common_type common_flags common_preempt_count "
        "common_pid comm pid prio target_cpu")
    assert check_error("zzz == 1").hint == ""


@pytest.mark.parametrize("text, fmt, message, hint", [
    ('pid == "x"', WAKEUP, "cannot compare integer field 'pid' (pid_t, s32) with a string "
                           "at column 8", ""),
    ("comm == 5", WAKEUP, "cannot compare string field 'comm' (char[16]) with a number at "
                          "column 9", 'to compare with text write "5"'),
    ('pid ~ "1*"', WAKEUP, "operator '~' needs a string field, but 'pid' is an integer "
                           "(pid_t, s32) at column 5", "integers take == != < <= > >= &"),
    ('comm < "b"', WAKEUP, "operator '<' is not defined for string field 'comm' (char[16]) at "
                           "column 6", "strings take ==, != and ~ (glob)"),
    ("comm & 1", WAKEUP, "operator '&' is not defined for string field 'comm' (char[16]) at "
                         "column 6", "strings take ==, != and ~ (glob)"),
    ("phys_addrs == 1", DMA, "field 'phys_addrs' (__data_loc u64[]) cannot be filtered at "
                             "column 1", "only integer and string fields can be; filter the "
                                         "others in your script"),
    ("arr == 1", SYNTH, "field 'arr' (u8[4]) cannot be filtered at column 1", None),
    ("common_flags & 1", WAKEUP, "field 'common_flags' cannot be filtered in the kernel at "
                                 "column 1", "the kernel writes the common_* header after BPF "
                                             "programs run; test it in your script instead"),
    ("common_preempt_count > 0", WAKEUP, "field 'common_preempt_count' cannot be filtered in "
                                         "the kernel at column 1", None),
])
def test_type_errors(text, fmt, message, hint):
    err = check_error(text, fmt)
    assert err.message == f"{fmt.full_name} filter '{text}': {message}"
    if hint is not None:
        assert err.hint == hint


@pytest.mark.parametrize("text, fmt, message", [
    ("prio > 5000000000", WAKEUP, "number 5000000000 is out of range for field 'prio' "
                                  "(int, s32: -2147483648..2147483647) at column 8"),
    ("prio > -2147483649", WAKEUP, "number -2147483649 is out of range for field 'prio' "
                                   "(int, s32: -2147483648..2147483647) at column 8"),
    ("u8v == 256", SYNTH, "number 256 is out of range for field 'u8v' (u8, u8: 0..255) at "
                          "column 8"),
    ("s8v & 0x100", SYNTH, "number 256 is out of range for field 's8v' (s8, s8: -128..255) at "
                           "column 7"),
    ("common_type == 65536", WAKEUP, "number 65536 is out of range for field 'common_type' "
                                     "(unsigned short, u16: 0..65535) at column 16"),
])
def test_out_of_range_literals_are_errors(text, fmt, message):
    assert check_error(text, fmt).message == f"{fmt.full_name} filter '{text}': {message}"


def test_negative_literal_on_unsigned_field_suggests_the_bit_pattern():
    err = check_error("dfd == -100", OPENAT)
    assert err.message == ("syscalls:sys_enter_openat filter 'dfd == -100': negative number -100 "
                           "for unsigned field 'dfd' (int, u64) at column 8")
    assert err.hint == "to match the same bits write 18446744073709551516 (0xffffffffffffff9c)"
    assert checked("dfd == 18446744073709551516", OPENAT).value == 2 ** 64 - 100


def test_bit_test_masks():
    # A signed field takes a mask written as its unsigned bit pattern, or as a negative number.
    assert checked("prio & 0x80000000").value == 0x80000000
    assert checked("prio & -1").value == -1
    assert checked("u8v & 0xff", SYNTH).value == 255


def test_range_edges_are_accepted():
    for text in ("prio == -2147483648", "prio == 2147483647", "s64v == -9223372036854775808",
                 "u64v > 18446744073709551615", "s8v < -128", "u16v >= 65535"):
        fmt = SYNTH if "v" in text.split()[0] else WAKEUP
        checked(text, fmt)


def test_header_fields():
    assert checked("common_pid == 1").source == "current_pid"
    assert checked("common_type == 5").source == "event_id"


def test_string_literal_longer_than_the_field_or_cap():
    err = check_error('comm == "%s"' % ("a" * 17))
    assert err.message.endswith("string of 17 bytes can never match: 'comm' (char[16]) holds "
                                "at most 16 bytes at column 9")
    checked('comm == "%s"' % ("a" * 16))
    err = check_error('filename == "%s"' % ("a" * (STRING_CAP + 1)), EXEC)
    assert f"strings are compared on their first {STRING_CAP} bytes in the kernel" in err.message
    checked('filename == "%s"' % ("a" * STRING_CAP), EXEC)


def test_glob_too_complex():
    err = check_error('filename ~ "*a????????"', EXEC)
    assert "glob too complex for the kernel" in err.message
    assert err.hint.startswith("at most 160 DFA states")


# -- interface names -------------------------------------------------------------------------------
@pytest.mark.parametrize("name, yes", [("ifindex", True), ("iif", True), ("oif", True),
                                       ("to_ifindex", True), ("dev_ifindex", True),
                                       ("pid", False), ("ifindexes", False), ("xif", False)])
def test_ifindex_field_names(name, yes):
    assert is_ifindex_field(name) is yes


def test_ifindex_by_name_uses_the_resolver():
    seen = []

    def resolver(name):
        seen.append(name)
        return {"eth0": 2, "lo": 1}.get(name)

    t = checked('ifindex == "eth0"', SYNTH, ifindex_resolver=resolver)
    assert isinstance(t, IntTest) and t.value == 2 and seen == ["eth0"]
    assert checked('ifindex != "lo"', SYNTH, ifindex_resolver=resolver).value == 1


@pytest.mark.parametrize("resolver", [lambda n: None, lambda n: (_ for _ in ()).throw(KeyError(n)),
                                      lambda n: (_ for _ in ()).throw(LookupError(n))])
def test_unknown_interface(resolver):
    err = check_error('ifindex == "nope0"', SYNTH, ifindex_resolver=resolver)
    assert err.message == ("test:synth filter 'ifindex == \"nope0\"': unknown network interface "
                           "'nope0' at column 12")
    assert "current network namespace" in err.hint


def test_resolver_failures_are_filter_errors():
    def broken(name):
        raise OSError("netlink is down")

    err = check_error('ifindex == "eth0"', SYNTH, ifindex_resolver=broken)
    assert "cannot resolve interface 'eth0': netlink is down" in err.message
    err = check_error('ifindex == "eth0"', SYNTH, ifindex_resolver=lambda n: "two")
    assert "the resolver returned 'two'" in err.message


@pytest.mark.parametrize("text, message", [
    ('ifindex < "lo"', "an interface name can only be compared with == or !=, not '<' at column 9"),
    ('ifindex == ""', "'' is not a network interface name at column 12"),
    ('ifindex == "a/b"', "'a/b' is not a network interface name at column 12"),
    ('ifindex == "sixteen-chars-xx"', "'sixteen-chars-xx' is not a network interface name at "
                                      "column 12"),
    ('ifindex == "\\xff"', "'?' is not a network interface name at column 12"),
])
def test_bad_interface_names(text, message):
    err = check_error(text, SYNTH, ifindex_resolver=lambda n: 1)
    assert err.message == f"test:synth filter '{text}': {message}"


def test_string_against_other_int_fields_is_still_an_error():
    err = check_error('u8v == "lo"', SYNTH, ifindex_resolver=lambda n: 1)
    assert "cannot compare integer field 'u8v' (u8, u8) with a string" in err.message


def test_default_resolver_finds_loopback():
    pytest.importorskip("pyroute2")
    t = checked('ifindex == "lo"', SYNTH)
    assert t.value >= 1
    err = check_error('ifindex == "ebpfprof-none"', SYNTH)
    assert "unknown network interface 'ebpfprof-none'" in err.message


def test_compile_filter_reports_fields_in_order():
    cf = compile_filter('prio < 0 || comm == "x" && prio > 5 && pid == 1', WAKEUP,
                        selector="sched:sched_wakeup", fn_name="f")
    assert cf.fields == ("prio", "comm", "pid")


def test_fn_name_must_be_an_identifier():
    with pytest.raises(ValueError):
        compile_filter("pid == 1", WAKEUP, selector="s", fn_name="f(); evil")


def test_glob_tables_must_fit_one_per_cpu_value():
    big = '"*abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"'
    six = " || ".join([f"filename ~ {big}"] * 6)
    checked(six, EXEC)
    err = check_error(" || ".join([f"filename ~ {big}"] * 8), EXEC)
    assert "the globs of this filter need more than 32768 bytes of tables per CPU" in err.message


def test_importing_the_compiler_pulls_in_neither_bcc_nor_pyroute2():
    import subprocess
    import sys

    from test_filter_gen import ROOT

    code = ("import sys, ebpfprof.lang.filter; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('bcc', 'pyroute2')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT)}, check=True).stdout
    assert out.strip() == "[]"
