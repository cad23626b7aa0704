"""The generated BPF C: golden files for representative selectors, and comment sanitising.

Golden files live in tests/golden/codegen/; after a deliberate change to bpf/ or codegen.py,
regenerate them with ``EBPFPROF_REGEN_GOLDEN=1`` and review the diff like code.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import support
from hypothesis import given, strategies as st

from ebpfprof.codegen.program import (
    DEFAULT_MAX_STACK, INLINE_ID_LIMIT, Attachment, CommTracker, TaskFilter, TracepointProgram,
    generate_program,
)
from ebpfprof.codegen.c import CIdent, c_comment, emitted
from ebpfprof.codegen.probe import ProbeFill, ProbeProgram, ProbeTarget
from ebpfprof.resolve.probe_format import probe_format, probe_registers
from ebpfprof.lang.filter import CompiledFilter
from ebpfprof.kernel.event_format import parse_format

fixture_format = support.fixture_format
check_golden = support.check_golden

RING = dict(ring_pages=2048, wakeup_every=512)

# What the filter compiler hands over: a C function named filter_fn (never user text).
FILTER_CODE = """\
/* filter: pid > 1000 && prio < 100 */
static __always_inline int ep_sel0_filter(void *ctx)
{
	s32 pid = *(s32 *)(ctx + 24);
	s32 prio = *(s32 *)(ctx + 28);

	return pid > 1000 && prio < 100;
}"""


FILTER = CompiledFilter(emitted(FILTER_CODE), ("pid", "prio"), CIdent("ep_sel0_filter"),
                        "pid > 1000 && prio < 100")


def prog(fmt_name: str, index: int = 0, label: str | None = None, **kw) -> TracepointProgram:
    fmt = fixture_format(fmt_name)
    return TracepointProgram(index=index, fmt=fmt, label=label or fmt.full_name, **kw)


def generate(programs, task=TaskFilter(), **ring):
    return generate_program(programs, task, **{**RING, **ring})


def comms() -> CommTracker:
    return CommTracker(fixture_format("sched_sched_process_exec"), fixture_format("sched_sched_process_fork"),
                       fixture_format("task_task_rename"))


X86_REGS = {"di": 112, "si": 104, "dx": 96, "cx": 88, "r8": 72, "r9": 64, "ax": 80, "ip": 128}


def probe(kind: str, name: str, target: ProbeTarget, index: int = 0, strings=(), **kw) -> ProbeProgram:
    """A probe as resolve/probe.py builds it, with x86-64's pt_regs offsets (BTF's, fixed here)."""
    fmt, plans = probe_format(kind, name, probe_registers("x86_64"), func_address=0x1139, strings=strings,
                              index=index)
    fills = tuple(ProbeFill(p.name, X86_REGS[p.source[4:]], note=f"{p.name}: {p.source[4:]}")
                  if p.source.startswith("reg:") else ProbeFill(p.name, None, int(p.source[6:]),
                                                                 note=f"{p.name}: the function's address")
                  for p in plans)
    return ProbeProgram(index=index, fmt=fmt, label=kw.pop("label", f"{kind}:{name}"), target=target,
                        fills=fills, strings=strings, **kw)


UPROBE = ProbeTarget("uprobe", False, path="/usr/bin/probed", offset=0x1139, pids=(42,))
URETPROBE = ProbeTarget("uprobe", True, path="/usr/bin/probed", offset=0x1139)
KPROBE = ProbeTarget("kprobe", False, function="do_sys_openat2")

CASES = {
    "fixed_size": lambda: generate([prog("sched_sched_wakeup")]),
    "data_loc": lambda: generate([prog("sched_sched_process_exec")]),
    "stack": lambda: generate([prog("sched_sched_wakeup", label="sched:sched_wakeup//stack/max-stack=16/",
                                    kernel_stack=True, user_stack=True, max_stack=16)]),
    "kernel_stack_only": lambda: generate([prog("sched_sched_switch", kernel_stack=True)]),
    "cpus": lambda: generate([prog("sched_sched_wakeup", label="sched:sched_wakeup//cpus=0,2-3/",
                                   cpus=(0, 2, 3))]),
    "cpus_above_63": lambda: generate([prog("sched_sched_wakeup", cpus=(1, 64, 130))]),
    "pids_short": lambda: generate([prog("syscalls_sys_enter_getppid")], TaskFilter(tgids=(100, 200, 300))),
    "pids_long": lambda: generate([prog("syscalls_sys_enter_getppid")],
                                  TaskFilter(tgids=tuple(range(1000, 1000 + INLINE_ID_LIMIT + 8)), tids=(7,))),
    "filter": lambda: generate([prog("sched_sched_wakeup", label="sched:sched_wakeup/pid>1000 && prio<100/",
                                     filter=FILTER)]),
    "wildcard_shared": lambda: generate([
        prog(name, i, label="syscalls:sys_*")
        for i, name in enumerate(["syscalls_sys_enter_getppid", "syscalls_sys_enter_openat",
                                  "syscalls_sys_exit_getppid"] * 3)], TaskFilter(tgids=(42,))),
    "two_selectors": lambda: generate([
        prog("sched_sched_wakeup", 0, label="sched:sched_wakeup//alias=w/"),
        prog("irq_irq_handler_entry", 1, kernel_stack=True, max_stack=8),
    ]),
    "comm_tracker": lambda: generate([prog("sched_sched_wakeup")], comms=comms()),
    "uprobe_args_string_stack": lambda: generate([
        probe("uprobe", "probed_name", UPROBE, strings=(1,), user_stack=True, max_stack=32,
              label='uprobe:probed_name@"/usr/bin/probed"//str=1/stack/')], TaskFilter(tgids=(42,))),
    "uretprobe_with_tracepoint": lambda: generate([
        prog("sched_sched_wakeup", 0),
        probe("uretprobe", "probed_add", URETPROBE, index=1)]),
    "kprobe": lambda: generate([probe("kprobe", "do_sys_openat2", KPROBE, kernel_stack=True)]),
    # --perf-buffer: the same functions, another ring (bpf/ring_perf.h)
    "perf_buffer": lambda: generate([
        prog("sched_sched_wakeup", 0),
        prog("sched_sched_process_exec", 1),
        probe("uretprobe", "probed_add", URETPROBE, index=2)], perf_buffer=True),
    "perf_buffer_wildcard": lambda: generate([
        prog(name, i, label="syscalls:sys_*")
        for i, name in enumerate(["syscalls_sys_enter_getppid", "syscalls_sys_enter_openat",
                                  "syscalls_sys_exit_getppid"] * 3)], perf_buffer=True),
    # --python-callchain: a fixed-size tracepoint on the scratch path, and a probe with -g
    "python_stack": lambda: generate([
        prog("syscalls_sys_enter_getppid", 0, label="syscalls:sys_enter_getppid//python-stack/",
             python_stack=True),
        probe("uprobe", "probed_add", UPROBE, index=1, user_stack=True, python_stack=True)],
        TaskFilter(tgids=(42,)), task_fsbase_offset=3128),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case):
    generated = CASES[case]()
    check_golden(f"codegen/{case}.c", generated.text)


# -- what the golden files must show (so a wrong regeneration cannot slip through) ------------------

def function_body(text: str, fn: str) -> str:
    start = text.index(f"int {fn}(void *ctx)\n{{\n")
    return text[start:text.index("\n}\n", start) + 3]


def reserved_bytes(body: str) -> int:
    """The payload size asked of ep_reserve (an integer expression of the generator's)."""
    m = re.search(r"ep_reserve\(sizeof\(\*s\) \+ ([0-9 *+]+)\)", body)
    assert m, body
    return eval(m.group(1))  # digits, '*' and '+' only


def copied_ranges(body: str) -> list[tuple[int, int]]:
    """Byte ranges [start, end) of ctx that a fixed-size program copies into the record."""
    ranges = []
    for lo, hi in re.findall(r"for \(int i = (\d+); i < (\d+); i\+\+\)\n\t+\(\(u64 \*\)dst\)\[i\] = "
                             r"\(\(u64 \*\)ctx\)\[i\];", body):
        ranges += [(8 * i, 8 * i + 8) for i in range(int(lo), int(hi))]
    width = {"u64": 8, "u32": 4, "u16": 2, "u8": 1}
    for t1, d, t2, c in re.findall(r"\*\((u\d+) \*\)\(dst \+ (\d+)\) = \*\((u\d+) \*\)\(ctx \+ (\d+)\);", body):
        assert (t1, d) == (t2, c), body
        ranges.append((int(d), int(d) + width[t1]))
    m = re.search(r"bpf_probe_read_kernel\(\(void \*\)\(s \+ 1\) \+ 8, (\d+) - 8, ctx \+ 8\);", body)
    if m:
        ranges.append((8, int(m.group(1))))
    return sorted(ranges)


def assert_copies_exactly(body: str, size: int) -> None:
    ranges = copied_ranges(body)
    covered = [b for lo, hi in ranges for b in range(lo, hi)]
    assert covered == list(range(8, size)), (size, ranges)     # every byte once, none past the end


def test_fixed_size_program_copies_its_fixed_part_straight_into_the_ring():
    g = CASES["fixed_size"]()
    assert g.attach == [Attachment("sched:sched_wakeup", "ep_sel0_sched__sched_wakeup")]
    assert g.maps_to_fill == {}
    body = function_body(g.text, "ep_sel0_sched__sched_wakeup")
    assert 36 <= reserved_bytes(body) < 36 + 8
    assert "ep_fill_header(s, st, 0, 0, 36);" in body
    assert "ep_fill_common(s + 1, 374, s->tid);" in body
    assert_copies_exactly(body, 36)
    assert "ep_scratch" not in g.text                  # no scratch map without dynamic data or stacks
    assert "#define EP_RING_PAGES 2048" in g.text and "#define EP_WAKEUP_EVERY 512" in g.text
    # no -p/-t/-C/cpus=: no task or CPU test runs per event
    assert "ep_task_wanted()" not in body and "want_cpu" not in body
    assert "if (!ep_keep_all(ctx))" in body


@pytest.mark.parametrize("name", ["sched_sched_wakeup", "sched_sched_switch", "signal_signal_generate",
                                  "syscalls_sys_enter_getppid", "syscalls_sys_exit_getppid",
                                  "syscalls_sys_enter_openat", "timer_hrtimer_start"])
def test_fixed_size_copy_covers_the_record_and_nothing_past_it(name):
    p = prog(name)
    size = p.fmt.fixed_size
    body = function_body(generate([p]).text, p.fn_name)
    assert_copies_exactly(body, size)
    assert size <= reserved_bytes(body) < size + 8


@pytest.mark.parametrize("size", range(9, 81))
def test_copy_of_every_record_size(size):
    fmt = parse_format("name: s\nID: 5\nformat:\n"
                       "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
                       f"\tfield:u8 tail[{size - 8}];\toffset:8;\tsize:{size - 8};\tsigned:0;\n", "t")
    p = TracepointProgram(0, fmt, "t:s")
    body = function_body(generate([p]).text, p.fn_name)
    assert_copies_exactly(body, size)
    assert size <= reserved_bytes(body) < size + 8
    assert f"ep_fill_header(s, st, 0, 0, {size});" in body


def test_data_loc_program_sizes_the_record_from_the_locator():
    g = CASES["data_loc"]()
    assert "u32 zero = 0, size = 20, raw_padded, nr_frames, total;" in g.text
    assert "u32 loc = *(u32 *)(ctx + 8);" in g.text
    assert "raw_padded = ep_copy_raw(sc, ctx, size, 365);" in g.text
    assert "nr_frames = ep_copy_stack(sc, ctx, raw_padded, 0, 0, 127);" in g.text
    assert "#define EP_MAX_STACK 1\n" in g.text           # no selector has a stack
    assert "BPF_PERCPU_ARRAY(ep_scratch, struct ep_scratch, 1);" in g.text


def test_every_data_loc_field_is_measured():
    g = generate([prog("dma_dma_map_sg")])
    for offset in (8, 24, 28, 32):
        assert f"u32 loc = *(u32 *)(ctx + {offset});" in g.text
    assert g.text.count("if (end > size)") == 4


def test_rel_loc_payload_is_relative_to_the_locator():
    fmt = parse_format("name: r\nID: 70000\nformat:\n"
                       "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
                       "\tfield:__rel_loc char[] s;\toffset:8;\tsize:4;\tsigned:0;\n", "t-sys")
    g = generate([TracepointProgram(0, fmt, "t-sys:r")])
    assert "u32 end = 12 + (loc & 0xffff) + (loc >> 16);" in g.text
    assert "raw_padded = ep_copy_raw(sc, ctx, size, 4464);" in g.text     # 70000 & 0xffff
    assert g.attach == [Attachment("t-sys:r", "ep_sel0_t_sys__r")]                 # identifiers stay C identifiers


def test_stack_program():
    g = CASES["stack"]()
    assert "#define EP_MAX_STACK 16" in g.text
    assert "nr_frames = ep_copy_stack(sc, ctx, raw_padded, 1, 1, 16);" in g.text
    k = CASES["kernel_stack_only"]()
    assert f"#define EP_MAX_STACK {DEFAULT_MAX_STACK}" in k.text
    assert "nr_frames = ep_copy_stack(sc, ctx, raw_padded, 1, 0, 127);" in k.text


def test_max_stack_is_capped():
    g = generate([prog("sched_sched_wakeup", kernel_stack=True, max_stack=500)])
    assert "#define EP_MAX_STACK 127" in g.text
    assert "ep_copy_stack(sc, ctx, raw_padded, 1, 0, 127);" in g.text


def test_cpu_restriction():
    g = CASES["cpus"]()
    assert "/* CPUs 0,2-3 */\nstatic __always_inline int ep_sel0_want_cpu(u32 cpu)" in g.text
    assert "return cpu < 64 && ((0xdULL >> cpu) & 1);" in g.text
    assert "!ep_sel0_want_cpu(bpf_get_smp_processor_id())" in g.text
    high = CASES["cpus_above_63"]()
    assert "return cpu == 1 || cpu == 64 || cpu == 130;" in high.text
    none = generate([prog("sched_sched_wakeup", cpus=())])
    assert "return 0;\n}" in none.text


def test_short_pid_list_is_inline():
    g = CASES["pids_short"]()
    assert "#define EP_WANT_TGID(x) ((x) == 100U || (x) == 200U || (x) == 300U)" in g.text
    assert "BPF_HASH" not in g.text and g.maps_to_fill == {}
    assert "!ep_task_wanted()" in function_body(g.text, "ep_sel0_syscalls__sys_enter_getppid")


def test_long_pid_list_goes_to_a_hash_map():
    g = CASES["pids_long"]()
    n = INLINE_ID_LIMIT + 8
    assert f"BPF_HASH(ep_tgids, u32, u8, {n});" in g.text
    assert "#define EP_WANT_TGID(x) ep_tgids_has(x)" in g.text
    assert "return ep_tgids.lookup(&id) != 0;" in g.text
    assert "#define EP_WANT_TID(x) ((x) == 7U)" in g.text
    assert g.maps_to_fill == {"ep_tgids": tuple(range(1000, 1000 + n))}


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_map_call_inside_a_macro(case):
    """BCC rewrites map calls (m.lookup(...)) only outside macros."""
    text = CASES[case]().text
    logical_lines = text.replace("\\\n", " ").splitlines()
    defines = [l for l in logical_lines if l.lstrip().startswith("#define")]
    assert not [d for d in defines if re.search(r"\.(lookup|update|delete|ringbuf_\w+|increment)\(", d)]


def test_inline_limit_boundary():
    at = generate([prog("syscalls_sys_enter_getppid")], TaskFilter(tids=tuple(range(INLINE_ID_LIMIT))))
    over = generate([prog("syscalls_sys_enter_getppid")], TaskFilter(tids=tuple(range(INLINE_ID_LIMIT + 1))))
    assert at.maps_to_fill == {} and "BPF_HASH" not in at.text
    assert over.maps_to_fill == {"ep_tids": tuple(range(INLINE_ID_LIMIT + 1))}
    assert f"BPF_HASH(ep_tids, u32, u8, {INLINE_ID_LIMIT + 1});" in over.text


def test_filter_code_is_placed_before_its_program_and_called():
    g = CASES["filter"]()
    assert FILTER_CODE in g.text
    assert g.text.index(FILTER_CODE) < g.text.index("int ep_sel0_sched__sched_wakeup(void *ctx)")
    assert "if (!ep_sel0_filter(ctx))" in g.text
    assert "ep_keep_all(ctx)" not in g.text.split("int ep_sel0_sched__sched_wakeup")[1]


def test_two_selectors_get_two_functions_and_one_ring():
    g = CASES["two_selectors"]()
    assert g.attach == [Attachment("sched:sched_wakeup", "ep_sel0_sched__sched_wakeup"),
                        Attachment("irq:irq_handler_entry", "ep_sel1_irq__irq_handler_entry")]
    assert g.text.count("BPF_RINGBUF_OUTPUT(ep_ring") == 1
    assert "ep_fill_header(s, st, 0, 0, 36);" in g.text
    assert "ep_fill_header(&sc->s, st, 1, nr_frames, sc->s.raw_size);" in g.text
    assert "#define EP_MAX_STACK 8" in g.text
    assert "/* selector 0: sched:sched_wakeup//alias=w/ */" in g.text


def test_comm_tracker_writes_the_map_and_takes_no_selector_index():
    """Its functions follow the selectors' in attach, are marked silent, and write no record."""
    g = CASES["comm_tracker"]()
    assert g.attach == [Attachment("sched:sched_wakeup", "ep_sel0_sched__sched_wakeup"),
                        Attachment("sched:sched_process_exec", "ep_comm_exec"),
                        Attachment("sched:sched_process_fork", "ep_comm_fork"),
                        Attachment("task:task_rename", "ep_comm_rename")]
    assert g.silent == ("ep_comm_exec", "ep_comm_fork", "ep_comm_rename")
    assert g.text.count('BPF_TABLE("lru_hash", u32, struct ep_comm, ep_comms') == 1
    for fn in g.silent:
        body = function_body(g.text, fn)
        assert body.index("if (!ep_gate_open())\n\t\treturn EP_DONE;") < body.index("ep_comms.update(")
        assert "ep_ring" not in body and "ep_fill_header" not in body
        assert re.findall(r"return (\w+);", body) == ["EP_DONE", "EP_DONE"]
    # offsets from the formats: child_pid at 20, rename's pid at 8 and newcomm[16] at 28
    assert "u32 child = *(u32 *)(ctx + 20);" in function_body(g.text, "ep_comm_fork")
    rename = function_body(g.text, "ep_comm_rename")
    assert "u32 tid = *(u32 *)(ctx + 8);" in rename
    assert "bpf_probe_read_kernel_str(c.comm, sizeof(c.comm), ctx + 28);" in rename
    # the selector's own function is the same with or without the tracker
    assert function_body(g.text, "ep_sel0_sched__sched_wakeup") == \
        function_body(CASES["fixed_size"]().text, "ep_sel0_sched__sched_wakeup")


def test_comm_tracker_follows_other_format_layouts():
    """A rename record without pid and with a __data_loc newcomm; a kernel without a fork
    tracepoint, or with a child_pid that is no 4-byte int, gets no fork function."""
    head = "".join(f"\tfield:{t} {n};\toffset:{o};\tsize:{z};\tsigned:{g};\n" for t, n, o, z, g in (
        ("unsigned short", "common_type", 0, 2, 0), ("unsigned char", "common_flags", 2, 1, 0),
        ("unsigned char", "common_preempt_count", 3, 1, 0), ("int", "common_pid", 4, 4, 1)))
    rename = parse_format("name: task_rename\nID: 9\nformat:\n" + head +
                          "\tfield:__data_loc char[] newcomm;\toffset:8;\tsize:4;\tsigned:0;\n", "task")
    fork = parse_format("name: sched_process_fork\nID: 10\nformat:\n" + head +
                        "\tfield:u64 child_pid;\toffset:8;\tsize:8;\tsigned:0;\n", "sched")
    g = generate([prog("sched_sched_wakeup")], comms=CommTracker(None, fork, rename))
    assert g.silent == ("ep_comm_rename",)
    body = function_body(g.text, "ep_comm_rename")
    assert "u32 tid = (u32)bpf_get_current_pid_tgid();" in body
    assert "ctx + (*(u32 *)(ctx + 8) & 0xffff)" in body
    assert generate([prog("sched_sched_wakeup")], comms=CommTracker()).text == CASES["fixed_size"]().text


def test_tiny_record_is_at_least_the_common_header():
    fmt = parse_format("name: t\nID: 5\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n",
                       "t")
    g = generate([TracepointProgram(0, fmt, "t:t")])
    body = function_body(g.text, "ep_sel0_t__t")
    assert reserved_bytes(body) == 8
    assert "ep_fill_header(s, st, 0, 0, 8);" in body
    assert copied_ranges(body) in ([], [(8, 8)])


# -- comment sanitising: a label cannot end its comment or inject C -------------------------------

def strip_c_comments(text: str) -> str:
    """What a C compiler sees after removing /* */ comments (no string literals in our output)."""
    return re.sub(r"/\*.*?\*/", " ", text, flags=re.S)


@pytest.mark.parametrize("label", [
    "sched:sched_wakeup/x*/ INJECTED(); /*",
    "a */ INJECTED(); /* b",
    "a\n#define INJECTED 1\n",
    "a */\nINJECTED();\n/*",
    "*/*/*/ INJECTED */",
    "a \\\n INJECTED",
    "tail star *",
    "tail slash /",
    "ümlaut */ INJECTED",
    "a\r*/INJECTED",
])
def test_label_cannot_escape_its_comment(label):
    g = generate([prog("sched_sched_wakeup", label=label)])
    visible = strip_c_comments(g.text)
    assert "INJECTED" not in visible
    line = next(l for l in g.text.splitlines() if l.startswith("/* selector 0: "))
    assert line.endswith(" */")
    assert line.count("*/") == 1
    assert "\n" not in c_comment(label) and "\r" not in c_comment(label)


def test_c_comment_examples():
    assert c_comment("plain text") == "plain text"
    assert c_comment("a*/b") == "a*\\/b"
    assert c_comment("a/*b") == "a/\\*b"
    assert c_comment("x\ny\tz\x00é") == "x?y?z??"


@given(st.text(max_size=80))
def test_c_comment_property(text):
    out = c_comment(text)
    assert "*/" not in out and "/*" not in out
    assert all(32 <= ord(c) < 127 for c in out)
    assert "*/" not in "/* " + out + " */"[:-3]


def test_a_wildcard_shares_one_function_told_apart_by_cookies():
    g = CASES["wildcard_shared"]()
    assert g.text.count("int ep_sel0_shared(void *ctx)") == 1
    assert g.text.count("\nint ") == 1                          # no per-tracepoint functions
    assert [a.function for a in g.attach] == ["ep_sel0_shared"] * 9
    fmts = [support.fixture_format(n) for n in ("syscalls_sys_enter_getppid", "syscalls_sys_enter_openat",
                                                "syscalls_sys_exit_getppid")] * 3
    for i, (a, fmt) in enumerate(zip(g.attach, fmts)):
        assert a.tracepoint == fmt.full_name
        assert a.cookie & 0xFFFF == i
        assert a.cookie >> 16 & 0xFFFF == fmt.id & 0xFFFF
        assert a.cookie >> 32 == max(fmt.fixed_size, 8)
    # the ring record holds the largest of them, with a power-of-two mask the verifier sees
    copy_max = int(re.search(r"ep_reserve\(sizeof\(\*s\) \+ 8 \+ (\d+)\)", g.text).group(1))
    assert copy_max & (copy_max - 1) == 0
    assert max(f.fixed_size for f in fmts) - 8 < copy_max
    assert f"copy = (raw_size - 8) & ({copy_max} - 1);" in g.text


def test_fewer_tracepoints_or_a_filter_keep_their_own_functions():
    few = generate([prog("syscalls_sys_enter_getppid", i, label="s:*") for i in range(7)])
    assert all(a.cookie is None for a in few.attach) and len({a.function for a in few.attach}) == 7
    filtered = generate([prog("sched_sched_wakeup", i, label="sched:sched_wakeup/pid>1000 && prio<100/",
                              filter=FILTER) for i in range(1)] +
                        [prog("syscalls_sys_enter_getppid", i, label="s:*") for i in range(1, 9)])
    assert filtered.attach[0].cookie is None
    assert {a.function for a in filtered.attach[1:]} == {"ep_sel1_shared"}


def test_a_tracepoint_that_cannot_share_does_not_split_the_others():
    """sched:* has tracepoints with __data_loc fields among fixed-size ones."""
    names = ["sched_sched_wakeup"] * 4 + ["sched_sched_process_exec"] + ["sched_sched_switch"] * 4
    g = generate([prog(name, i, label="sched:*") for i, name in enumerate(names)])
    assert [a.function for a in g.attach].count("ep_sel0_shared") == 8
    assert [a for a in g.attach if a.cookie is None] == [
        Attachment("sched:sched_process_exec", "ep_sel4_sched__sched_process_exec")]
    assert sorted(a.cookie & 0xFFFF for a in g.attach if a.cookie is not None) == [0, 1, 2, 3, 5, 6, 7, 8]


def test_perf_buffer_changes_the_ring_and_nothing_else():
    """--perf-buffer swaps bpf/ring_bpf.h for bpf/ring_perf.h: every function is the same text
    (they reach the ring through ep_reserve/ep_submit/ep_output), and no BPF ring buffer,
    ring size or wakeup count is left in the program."""
    programs = [prog("sched_sched_wakeup", 0), prog("sched_sched_process_exec", 1),
                probe("uretprobe", "probed_add", URETPROBE, index=2)]
    ring = generate(programs)
    perf = generate(programs, perf_buffer=True)
    assert "BPF_RINGBUF_OUTPUT(ep_ring" in ring.text and "BPF_PERF_OUTPUT" not in ring.text
    assert perf.text.count("BPF_PERF_OUTPUT(ep_ring);") == 1
    for absent in ("BPF_RINGBUF_OUTPUT", "ringbuf_", "EP_RING_PAGES", "EP_WAKEUP_EVERY", "BPF_RB_"):
        assert absent not in perf.text, absent
    assert "ep_ring.perf_submit(ctx, s, size)" in perf.text
    for fn in ("ep_sel0_sched__sched_wakeup", "ep_sel1_sched__sched_process_exec"):
        assert function_body(perf.text, fn) == function_body(ring.text, fn)
    assert perf.attach == ring.attach
    # the fixed-size function writes into the per-CPU staging area and submits what it reserved
    body = function_body(perf.text, "ep_sel0_sched__sched_wakeup")
    assert "s = ep_reserve(sizeof(*s) + 5 * 8);" in body
    assert "ep_submit(ctx, s, sizeof(*s) + 5 * 8, st);" in body
    assert "BPF_PERCPU_ARRAY(ep_stage, struct ep_stage, 1);" in perf.text


def test_perf_buffer_wildcard_submits_what_it_copied():
    """The shared function reserves for the largest record, but a perf ring takes only the
    record's own bytes (header + 8 + copy): no 4 KB of padding per event."""
    g = CASES["perf_buffer_wildcard"]()
    body = function_body(g.text, "ep_sel0_shared")
    assert "ep_submit(ctx, s, sizeof(*s) + 8 + copy, st);" in body


def test_python_stack_needs_the_fsbase_offset_and_changes_nothing_without_it():
    with pytest.raises(ValueError, match="fsbase"):
        generate([prog("syscalls_sys_enter_getppid", python_stack=True)])
    plain = generate([prog("sched_sched_wakeup", kernel_stack=True)]).text
    assert "ep_python_stack" not in plain and "ep_py_procs" not in plain
    text = CASES["python_stack"]().text
    assert "#define EP_TASK_FSBASE_OFF 3128" in text
    assert text.count("nr_frames = ep_python_stack(sc, ") == 2
