"""Any text at all: compile_filter returns a CompiledFilter or raises FilterError — never another
exception — and whatever it returns carries no C of the user's making."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebpfprof.lang.filter import CompiledFilter, FilterError, compile_filter
from test_filter_gen import assert_no_injection, load_format

FORMATS = [load_format(n) for n in ("sched_sched_wakeup", "sched_sched_process_exec", "synth",
                                    "dma_dma_map_sg", "syscalls_sys_enter_openat")]

# Fragments a hostile or careless user might type, mixed with the language's own.
FRAGMENTS = [
    "pid", "comm", "filename", "prio", "common_pid", "common_type", "common_flags", "dname",
    "rname", "tiny", "big", "ifindex", "arr", "phys_addrs", "u64v", "s8v", "dfd", "pidd",
    "==", "!=", "<", "<=", ">", ">=", "&", "~", "&&", "||", "!", "(", ")", "=", "|", "-",
    " ", "\t", "\n", "\r", "\0", '"', "'", "\\", '\\"', "\\\\", "\\x", "\\x4", "\\x00", "\\xff",
    '"bash"', '"*/tru?"', '"[!a-z]*"', '"[^/]"', '"[z-a]"', '""', '"é"', '"\U0001F600"',
    "0", "1", "-1", "0x", "0xff", "010", "1e3", "4294967296", "18446744073709551615",
    "18446744073709551616", "-9223372036854775809", "9" * 30,
    "*/", "/*", "//", "#include <linux/sched.h>", "#define x", "; return 1; }", "{", "}",
    "__attribute__", "asm(\"\")", "??/", "\u202e", "\ud800", "\x85", "\u2028",
]


def resolver(name: str):
    return {"lo": 1, "eth0": 2}.get(name)


def _compile(text: str, fmt) -> None:
    try:
        cf = compile_filter(text, fmt, selector=fmt.full_name, fn_name="ff",
                            ifindex_resolver=resolver)
    except FilterError as err:
        # One line, plus a caret under a one-line copy of the text.
        assert "\n" not in err.message and "\r" not in err.message
        assert err.detail.count("\n") >= 1
        assert err.exit_code == 2
        return
    assert isinstance(cf, CompiledFilter)
    assert_no_injection(cf.c_code.text, "ff")


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=80), st.sampled_from(FORMATS))
def test_random_text(text, fmt):
    _compile(text, fmt)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=14).map("".join), st.sampled_from(FORMATS))
def test_adversarial_fragments(text, fmt):
    _compile(text, fmt)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["comm", "filename", "dname", "rname", "tiny", "big"]),
       st.sampled_from(["==", "!=", "~"]),
       st.text(max_size=40), st.sampled_from(FORMATS))
def test_any_string_literal(field, op, body, fmt):
    escaped = body.replace("\\", "\\\\").replace('"', '\\"')
    _compile(f'{field} {op} "{escaped}"', fmt)


@pytest.mark.parametrize("text", [
    "(" * 10000 + "pid == 1" + ")" * 10000,
    "!" * 10000 + "pid == 1",
    " && ".join(["pid == 1"] * 5000),
    "pid == " + "1" * 100000,
    'comm ~ "' + "*a" * 3000 + '"',
    'filename ~ "' + "x" * 100000 + '"',
    "\0" * 1000,
])
def test_huge_inputs_fail_cleanly_and_quickly(text):
    for fmt in FORMATS[:2]:
        _compile(text, fmt)
