"""The generated C means what the filter says: compiled with the host's gcc against stand-ins for
the BPF helpers, run on random records, and compared with the reference semantics of
test_filter_gen — no kernel, no root.

The stand-ins behave like the kernel's: ``bpf_probe_read_kernel_str`` copies at most size-1 bytes,
always NUL-terminates and returns the bytes written including the NUL; a per-CPU array value
starts zeroed and keeps its contents between calls.
"""
from __future__ import annotations

import ctypes
import re
import shutil
import struct
import subprocess
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebpfprof.lang.filter import compile_filter
from test_filter_gen import Record, evaluate, filters, load_format, records

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")

PRELUDE = r"""
#include <string.h>
typedef unsigned char u8; typedef signed char s8;
typedef unsigned short u16; typedef short s16;
typedef unsigned int u32; typedef int s32;
typedef unsigned long long u64; typedef long long s64;
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

static u64 current_pid_tgid;
static u64 bpf_get_current_pid_tgid(void) { return current_pid_tgid; }

static long bpf_probe_read_kernel(void *dst, u32 size, const void *src)
{
	memcpy(dst, src, size);
	return 0;
}

static long bpf_probe_read_kernel_str(void *dst, u32 size, const void *src)
{
	u8 *d = dst;
	const u8 *s = src;
	u32 i;

	if (size == 0)
		return 0;
	for (i = 0; i < size - 1 && s[i]; i++)
		d[i] = s[i];
	d[i] = 0;
	return i + 1;
}

/* BCC's map syntax, name.lookup(&key), works in C through a function pointer member. */
#define BPF_PERCPU_ARRAY(name, type, n) \
	static type name##_storage; \
	static type *name##_lookup(u32 *key) { (void)key; return &name##_storage; } \
	static struct { type *(*lookup)(u32 *); } name = { name##_lookup }
"""


# The BPF-syntax asm that loads context fields, and the same load in C for the host compiler.
_CTX_LOAD = re.compile(r'asm volatile\("%\[raw\] = \*\((u\d+) \*\)\(%\[ctx\] \+ (\d+)\)" : '
                       r'\[raw\] "=r"\((\w+)\) : \[ctx\] "r"\(ctx\)\);')


def for_host(c_code: str) -> str:
    """The filter's C with its BPF-only asm loads spelled in C (the kernel test runs the asm)."""
    return _CTX_LOAD.sub(lambda m: f"{m.group(3)} = *({m.group(1)} *)(ctx + {m.group(2)});",
                         c_code)


class CFilters:
    """Several compiled filters in one shared object, callable on raw records."""

    def __init__(self, c_codes: list[str]):
        wrappers = "\n".join(
            f"int run{i}(void *ctx, u64 pid) {{ current_pid_tgid = pid; return f{i}(ctx); }}"
            for i in range(len(c_codes)))
        source = PRELUDE + "\n".join(map(for_host, c_codes)) + "\n" + wrappers + "\n"
        assert "%[raw]" not in source
        self.dir = tempfile.TemporaryDirectory()
        c_path = f"{self.dir.name}/filters.c"
        so_path = f"{self.dir.name}/filters.so"
        with open(c_path, "w") as fh:
            fh.write(source)
        # -fno-strict-aliasing as in the kernel: the C reads the byte buffer as u64 words.
        proc = subprocess.run(["gcc", "-O2", "-fno-strict-aliasing", "-shared", "-fPIC", "-Wall",
                               "-Werror",
                               "-Wno-unused-function", "-o", so_path, c_path],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr + "\n" + source
        self.lib = ctypes.CDLL(so_path)
        self.funcs = []
        for i in range(len(c_codes)):
            fn = getattr(self.lib, f"run{i}")
            fn.argtypes = [ctypes.c_char_p, ctypes.c_uint64]
            fn.restype = ctypes.c_int
            self.funcs.append(fn)

    def run(self, i: int, data: bytes, pid: int) -> bool:
        # The kernel's pid_tgid has the pid in its low 32 bits.
        return self.funcs[i](data, (0x1234 << 32) | (pid & 0xFFFFFFFF)) != 0


def _differential(fmt_name: str, batch):
    fmt = load_format(fmt_name)
    pairs, recs = batch
    codes = [compile_filter(text, fmt, selector=f"test:{fmt.name}", fn_name=f"f{i}").c_code.text
             for i, (text, _) in enumerate(pairs)]
    lib = CFilters(codes)
    for i, (text, tree) in enumerate(pairs):
        for rec in recs:
            want = evaluate(tree, fmt, rec)
            got = lib.run(i, rec.data, rec.pid)
            assert got == want, f"filter {text!r} on {rec!r}: C says {got}, reference {want}"


@pytest.mark.parametrize("fmt_name", ["sched_sched_wakeup", "sched_sched_process_exec", "synth",
                                      "dma_dma_map_sg", "timer_hrtimer_start"])
def test_emitted_c_matches_reference(fmt_name):
    fmt = load_format(fmt_name)

    @settings(max_examples=12, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.large_base_example])
    @given(st.tuples(st.lists(filters(fmt, max_leaves=6), min_size=8, max_size=8),
                     st.lists(records(fmt), min_size=25, max_size=25)))
    def check(batch):
        _differential(fmt_name, batch)

    check()


def test_string_edges_by_hand():
    """Equality and globs at the cap, at the char[] size and with odd locator sizes."""
    fmt = load_format("synth")
    cap = 128

    def rec(dname: bytes, size: int | None = None, big: bytes = b"", tiny: bytes = b"") -> Record:
        fixed = bytearray(fmt.fixed_size)
        size = len(dname) + 1 if size is None else size
        struct.pack_into("<I", fixed, 44, (size << 16) | fmt.fixed_size)
        struct.pack_into("<I", fixed, 48, (0 << 16) | (fmt.fixed_size + len(dname) + 1 - 52))
        fixed[52:52 + len(big)] = big[:200]
        fixed[40:40 + len(tiny)] = tiny[:4]
        return Record(bytes(fixed) + dname + b"\0" + bytes(300), 1)

    cases = [
        ('dname == ""', rec(b""), True),
        ('dname == ""', rec(b"a"), False),
        ('dname == "ab"', rec(b"ab"), True),
        ('dname == "ab"', rec(b"abc"), False),
        ('dname == "ab"', rec(b"abc", size=2), True),         # the size ends the string
        ('dname == "abc"', rec(b"abc", size=2), False),
        ('dname ~ "a*"', rec(b"a" * 500), True),              # decided inside the cap
        ('dname ~ "*a"', rec(b"a" * 500), False),             # undecided at the cap: no match
        ('dname ~ "*a"', rec(b"a" * cap), True),              # exactly the cap: still exact
        ('dname ~ "*b"', rec(b"a" * (cap - 1) + b"b"), True),
        ('dname ~ "*b"', rec(b"a" * cap + b"b"), False),      # the b is past the cap
        ('dname == "%s"' % ("a" * cap), rec(b"a" * cap), True),
        ('dname == "%s"' % ("a" * cap), rec(b"a" * (cap + 1)), False),
        ('tiny == "abcd"', rec(b"", tiny=b"abcd"), True),     # char[4] filled, no NUL
        ('tiny == "abc"', rec(b"", tiny=b"abcd"), False),
        ('tiny ~ "abc?"', rec(b"", tiny=b"abcd"), True),
        ('big ~ "x*"', rec(b"", big=b"x" * 200), True),
        ('big == "%s"' % ("x" * cap), rec(b"", big=b"x" * cap), True),
        ('big == "%s"' % ("x" * cap), rec(b"", big=b"x" * 199), False),
        ('rname == ""', rec(b"q"), True),
    ]
    codes = [compile_filter(text, fmt, selector="test:synth", fn_name=f"f{i}").c_code.text
             for i, (text, _, _) in enumerate(cases)]
    lib = CFilters(codes)
    for i, (text, r, want) in enumerate(cases):
        assert lib.run(i, r.data, r.pid) == want, text


def test_common_pid_and_type():
    fmt = load_format("sched_sched_wakeup")
    cases = ["common_pid == 4242", "common_pid < 0", f"common_type == {fmt.id}",
             "common_type != 1"]
    lib = CFilters([compile_filter(t, fmt, selector="s:w", fn_name=f"f{i}").c_code.text
                    for i, t in enumerate(cases)])
    data = bytes(64)
    assert [lib.run(i, data, 4242) for i in range(4)] == [True, False, True, True]
    assert [lib.run(i, data, -7) for i in range(4)] == [False, True, True, True]
