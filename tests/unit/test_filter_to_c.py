"""C emission: literal spelling, comment sanitizing, layout, and that no filter text becomes code."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebpfprof.lang.filter import compile_filter
from ebpfprof.lang.filter.to_c import c_int_literal, comment_text
from test_filter_gen import assert_no_injection, load_format

WAKEUP = load_format("sched_sched_wakeup")
EXEC = load_format("sched_sched_process_exec")
SYNTH = load_format("synth")


def c(text: str, fmt=WAKEUP, fn="f") -> str:
    return compile_filter(text, fmt, selector=fmt.full_name, fn_name=fn).c_code.text


@pytest.mark.parametrize("value, signed, spelled", [
    (0, False, "0ULL"), (42, True, "42LL"), (-1, True, "-1LL"),
    (2 ** 64 - 1, False, "18446744073709551615ULL"),
    (-(2 ** 63), True, "(-9223372036854775807LL - 1)"), (2 ** 63 - 1, True, "9223372036854775807LL"),
])
def test_int_literals(value, signed, spelled):
    assert c_int_literal(value, signed) == spelled


@settings(max_examples=500)
@given(st.text())
def test_comment_text_is_always_safe(text):
    out = comment_text(text)
    assert "*/" not in out and "/*" not in out
    assert all(" " <= ch <= "~" for ch in out)
    assert out.startswith("'") and out.endswith("'")


@pytest.mark.parametrize("text, safe", [
    ("a */ b", "'a *\\/ b'"), ("/* x", "'/\\* x'"), ("*/*/", "'*\\/\\*\\/'"), ("a\nb", "'a?b'"),
    ("é", "'?'"), ("x\\", "'x\\'"),
])
def test_comment_text_examples(text, safe):
    assert comment_text(text) == safe


def test_int_clause_loads_the_field_by_offset():
    code = c("prio < -5")
    assert "u32 v_raw;\t/* 'int prio' */" in code
    assert ('asm volatile("%[raw] = *(u32 *)(%[ctx] + 28)" : [raw] "=r"(v_raw) : [ctx] "r"(ctx));'
            in code)
    assert "s32 v = v_raw;" in code and "return v < -5LL;" in code


def test_unsigned_and_wide_fields():
    code = c("u64v >= 18446744073709551615 && u16v != 7", SYNTH)
    assert '"%[raw] = *(u64 *)(%[ctx] + 24)"' in code and "v >= 18446744073709551615ULL" in code
    assert '"%[raw] = *(u16 *)(%[ctx] + 12)"' in code and "v != 7ULL" in code


def test_misaligned_field_is_copied_not_loaded():
    code = c("odd32 == 1", SYNTH)
    assert "bpf_probe_read_kernel(&v, sizeof(v), ctx + 14);" in code
    assert "(%[ctx] + 14)" not in code


def test_bit_test_masks_in_the_fields_width():
    assert "(v & 4294967295ULL) != 0" in c("prio & -1")
    assert "(v & 128ULL) != 0" in c("s8v & -128", SYNTH)


def test_common_fields_do_not_read_the_header():
    code = c("common_pid == 1 && common_type == 374")
    assert "bpf_get_current_pid_tgid()" in code
    assert f"u16 v = {WAKEUP.id};" in code
    assert "ctx + 0)" not in code and "ctx + 4)" not in code


def test_string_equality_compares_words_and_length():
    code = c('comm == "a\'\\\\b"')
    assert "bpf_probe_read_kernel_str(buf, 17, ctx + 8);" in code
    assert "diff |= (*(u64 *)(buf + 0) & 0x00000000ffffffffULL) ^ 0x00000000625c2761ULL;" in code
    assert "return len == 4 && diff == 0;" in code
    code = c('comm != "0123456789"')
    assert "diff |= *(u64 *)(buf + 0) ^ 0x3736353433323130ULL;" in code
    assert "diff |= (*(u64 *)(buf + 8) & 0x000000000000ffffULL) ^ 0x0000000000003938ULL;" in code
    assert "return len != 10 || diff != 0;" in code
    assert "return len == 0;" in c('comm == ""')


def test_dynamic_and_relative_locators():
    assert "ctx + (loc & 0xffff)" in c('filename == "x"', EXEC)
    assert "ctx + 52 + (loc & 0xffff)" in c('rname == "x"', SYNTH)


def test_glob_tables_are_written_once_per_cpu():
    code = c('filename ~ "*/tru?"', EXEC)
    assert "if (!scratch->dfas_ready)\n\t\tf_init_dfas(scratch);" in code
    assert "scratch->class0['/'] = 1;" in code
    assert "state = next[(state * 5 + classes[s[i]]) & 63];" in code


def test_trivial_globs_need_no_table():
    code = c('filename ~ "*"', EXEC)
    assert "dfa0" not in code and "return 1;" in code


def test_every_name_is_prefixed():
    code = c('comm ~ "b*" && pid == 1', fn="flt_7")
    names = set(re.findall(r"\b(?:static __always_inline \w+|struct|BPF_PERCPU_ARRAY\()\s*(\w+)",
                           code))
    assert names and all(n.startswith("flt_7") for n in names)
    assert "static __always_inline int flt_7(void *ctx)" in code


def test_expression_keeps_the_filters_grouping():
    code = c("pid == 1 || prio == 2 && !(target_cpu == 3 || comm == \"x\")")
    assert "return f_c0(ctx) || (f_c1(ctx) && !(f_c2(ctx) || f_c3(ctx, scratch)));" in code


@pytest.mark.parametrize("text", [
    'comm == "\\"); system(\\"x"',
    'comm ~ "*/ int evil; /*"',
    'comm == "\\n#include <x>"',
    'comm == "??/"',
    'comm == "\\\\"',
])
def test_hostile_strings_stay_data(text):
    code = c(text)
    assert_no_injection(code, "f")
