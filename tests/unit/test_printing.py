"""event.print() (SPEC §5): the ftrace latency flags, and the perf/ftrace line for made events.

Fields are rendered by libtraceevent from the fixture's own ``print fmt``; if the library is not
installed those tests are skipped with that reason (``event.print()`` then raises
MissingDependency, which is the product's behaviour, not something to fake here).
"""
from __future__ import annotations

import io
import os
import struct
import time
from datetime import datetime
from pathlib import Path

import pytest

import support

from ebpfprof import _ring
from ebpfprof.errors import MissingDependency
from ebpfprof.output.printing import EventPrinter, format_flags
from ebpfprof.run.events import field_specs

fixture_format = support.fixture_format
pytestmark = pytest.mark.usefixtures("clean_ring_state")


def _libtraceevent_missing() -> str | None:
    from ebpfprof.output.printfmt import libtraceevent

    try:
        libtraceevent()
    except MissingDependency as e:
        return e.message
    return None


needs_libtraceevent = pytest.mark.skipif(_libtraceevent_missing() is not None,
                                         reason=str(_libtraceevent_missing()))


# -- the latency column ---------------------------------------------------------------------------------

# ftrace's TRACE_FLAG_* (include/linux/trace_events.h, Linux 6.13+)
IRQS_OFF, NEED_RESCHED_LAZY, NEED_RESCHED, HARDIRQ, SOFTIRQ, PREEMPT_RESCHED, NMI, BH_OFF = (
    0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80)


def ftrace_lat_fmt(flags: int, preempt_count: int) -> str:
    """kernel/trace/trace_output.c:trace_print_lat_fmt (6.13+), in the 4-column layout of SPEC §5."""
    nmi, hardirq, softirq, bh_off = flags & NMI, flags & HARDIRQ, flags & SOFTIRQ, flags & BH_OFF
    irqs_off = "D" if flags & IRQS_OFF and bh_off else "d" if flags & IRQS_OFF else "b" if bh_off else "."
    need_resched = {
        NEED_RESCHED | NEED_RESCHED_LAZY | PREEMPT_RESCHED: "B",
        NEED_RESCHED | PREEMPT_RESCHED: "N",
        NEED_RESCHED_LAZY | PREEMPT_RESCHED: "L",
        NEED_RESCHED | NEED_RESCHED_LAZY: "b",
        NEED_RESCHED: "n",
        NEED_RESCHED_LAZY: "l",
        PREEMPT_RESCHED: "p",
    }.get(flags & (NEED_RESCHED | NEED_RESCHED_LAZY | PREEMPT_RESCHED), ".")
    hardsoft = ("Z" if nmi and hardirq else "z" if nmi else "H" if hardirq and softirq else "h" if hardirq
                else "s" if softirq else ".")
    depth = "%x" % (preempt_count & 0xF) if preempt_count & 0xF else "."
    return irqs_off + need_resched + hardsoft + depth


PREEMPT_COUNTS = (0, 1, 2, 7, 9, 0xA, 0xF, 0x10, 0x21, 0xFF)


@pytest.mark.parametrize("preempt", PREEMPT_COUNTS)
def test_flags_match_ftrace(preempt):
    for flags in range(0x100):
        assert format_flags(flags, preempt) == ftrace_lat_fmt(flags, preempt), hex(flags)


def test_unknown_header_shows_x_in_the_irqs_column():
    for flags in range(0x100):
        known = format_flags(flags, 3)
        assert format_flags(flags, 3, known=False) == "X" + known[1:]


@pytest.mark.parametrize("flags, preempt, text", [
    (0x00, 0, "...."),
    (0x25, 7, "dN.7"),            # SPEC §5's example
    (0x02, 0, ".l.."),            # NEED_RESCHED_LAZY (6.13+)
    (0x26, 0, ".B.."),
    (0x04, 1, ".n.1"),
    (0x20, 0, ".p.."),
    (0x08, 2, "..h2"),
    (0x10, 0, "..s."),
    (0x18, 0, "..H."),
    (0x40, 0, "..z."),
    (0x48, 0xF, "..Zf"),
    (0x80, 0, "b..."),
    (0x81, 0, "D..."),
    (0x01, 0x10, "d..."),          # only the low nibble is the preempt depth
])
def test_flag_examples(flags, preempt, text):
    assert format_flags(flags, preempt) == text


# -- the event line ---------------------------------------------------------------------------------------

def make(fmt_name: str, raw: bytes, *, time_ns=767594114000, pid=0, tid=0, cpu=0, name=None, info=True,
         frames=()):
    fmt = fixture_format(fmt_name)
    cls = _ring.EventClass(name or fmt.full_name, None, field_specs(fmt), support.event_spec(fmt, header_known=True) if info else None)
    return _ring.make_event(cls, time_ns, pid, tid, cpu, raw, frames)


def wakeup(**kw):
    raw = struct.pack("<HBBi16siii", 374, 0x25, 7, 8743, b"bash", 8738, 120, 0)
    return make("sched_sched_wakeup", raw, **kw)


def own_comm() -> str:
    with open("/proc/self/comm") as f:
        return f.read().rstrip("\n")


def no_such_tid() -> int:
    with open("/proc/sys/kernel/pid_max") as f:
        return int(f.read())          # pids are below pid_max: this one never exists


@needs_libtraceevent
def test_spec_example_line():
    me = os.getpid()
    line = EventPrinter().line(wakeup(pid=me, tid=me), timestamp=False)
    assert line == ("%16s %6d dN.7 [000] 767.594114: sched:sched_wakeup: comm=bash pid=8738 prio=120 "
                    "target_cpu=000" % (own_comm(), me))


@needs_libtraceevent
def test_idle_and_exited_threads():
    p = EventPrinter()
    assert p.line(wakeup(), timestamp=False) == ("          <idle>      0 dN.7 [000] 767.594114: sched:sched_wakeup: "
                                                 "comm=bash pid=8738 prio=120 target_cpu=000")
    gone = no_such_tid()
    assert p.line(wakeup(tid=gone, cpu=12), timestamp=False).startswith("           <...> %6d dN.7 [012] " % gone)


@needs_libtraceevent
def test_the_runs_comm_map_comes_first_then_proc():
    """task_comm (the session's comm map) names exited threads; /proc, then <...>, after it."""
    gone, me = no_such_tid(), os.getpid()
    asked = []

    def task_comm(tid):
        asked.append(tid)
        return "true" if tid == gone else None
    p = EventPrinter(task_comm=task_comm)
    assert p.line(wakeup(tid=gone), timestamp=False).startswith("            true %6d " % gone)
    assert p.line(wakeup(tid=me), timestamp=False).startswith("%16s %6d " % (own_comm(), me))
    assert p.line(wakeup(), timestamp=False).startswith("          <idle>      0 ")
    assert asked == [gone, me]                # never for the idle task


@needs_libtraceevent
def test_wall_clock_prefix():
    local = time.mktime((2026, 11, 23, 21, 48, 14, 0, 0, -1))
    real = int(local) * 1_000_000_000 + 624_601_999
    ev = wakeup(time_ns=767594114000)
    _ring.set_realtime_offset(real - 767594114000)
    line = EventPrinter().line(ev)
    assert line.startswith("2026-11-23 21:48:14.624601           <idle>      0 dN.7 [000] 767.594114: ")
    assert line == (datetime.fromtimestamp(real // 10**9).strftime("%Y-%m-%d %H:%M:%S") + ".624601 "
                    + EventPrinter().line(ev, timestamp=False))


@needs_libtraceevent
def test_seconds_and_microseconds_of_time():
    p = EventPrinter()
    assert " 0.000001: " in p.line(wakeup(time_ns=1999), timestamp=False)
    assert " 12345.000000: " in p.line(wakeup(time_ns=12345_000_000_999), timestamp=False)


@needs_libtraceevent
@pytest.mark.parametrize("fmt_name, raw, fields", [
    ("sched_sched_switch",
     struct.pack("<HBBi16siiq16sii", 372, 0, 0, 1, b"bash", 10, 120, 1, b"swapper/1", 0, 120),
     "prev_comm=bash prev_pid=10 prev_prio=120 prev_state=S ==> next_comm=swapper/1 next_pid=0 next_prio=120"),
    ("sched_sched_switch",
     struct.pack("<HBBi16siiq16sii", 372, 0, 0, 1, b"kworker/0:1", 10, 120, 0, b"bash", 5, 120),
     "prev_comm=kworker/0:1 prev_pid=10 prev_prio=120 prev_state=R ==> next_comm=bash next_pid=5 next_prio=120"),
    ("sched_sched_process_exec",
     struct.pack("<HBBiIii", 365, 0, 0, 10, (12 << 16) | 20, 10, 11) + b"/usr/bin/ls\0",
     "filename=/usr/bin/ls pid=10 old_pid=11"),
    ("syscalls_sys_enter_openat",
     struct.pack("<HBBii4xQQQQ", 782, 0, 0, 1, 257, (1 << 64) - 100, 0x7FFD1234, 0x80000, 0o644),
     "dfd: 0xffffffffffffff9c, filename: 0x7ffd1234, flags: 0x00080000, mode: 0x000001a4"),
    ("syscalls_sys_exit_getppid", struct.pack("<HBBii4xq", 304, 0, 0, 1, 110, -14), "0xfffffffffffffff2"),
    ("oom_oom_score_adj_update", struct.pack("<HBBii16sh", 611, 0, 0, 1, 42, b"oomy", -1000),
     "pid=42 comm=oomy oom_score_adj=-1000"),
    ("irq_irq_handler_entry", struct.pack("<HBBiiI", 225, 0, 0, 1, 24, (5 << 16) | 16) + b"eth0\0",
     "irq=24 name=eth0"),
])
def test_fields_rendered_with_the_print_fmt(fmt_name, raw, fields):
    fmt = fixture_format(fmt_name)
    line = EventPrinter().line(make(fmt_name, raw, cpu=1), timestamp=False)
    assert line == f"          <idle>      0 .... [001] 767.594114: {fmt.full_name}: {fields}"


@needs_libtraceevent
def test_alias_is_the_name_shown():
    line = EventPrinter().line(wakeup(name="sched:w1"), timestamp=False)
    assert " 767.594114: sched:w1: comm=bash " in line


def test_event_without_a_format_prints_its_fields():
    ev = wakeup(info=False, name="x:y")
    line = EventPrinter().line(ev, timestamp=False)
    assert line == ("          <idle>      0 .... [000] 767.594114: x:y: common_type=374 common_flags=37 "
                    "common_preempt_count=7 common_pid=8743 comm=bash pid=8738 prio=120 target_cpu=0")


FRAMES = [
    {"addr": 0xFFFFFFFF813A5039, "symbol": "__traceiter_sched_wakeup", "offset": 0x29, "kernel": True,
     "dso": "[kernel.kallsyms]"},
    {"addr": 0x401020, "symbol": "main", "offset": 0, "kernel": False, "dso": "/usr/bin/prog"},
    {"addr": 0x7F0000001000, "symbol": "Unknown", "offset": 0, "kernel": False, "dso": "[unknown]"},
]


def test_frame_lines():
    _ring.set_hooks(resolve_callchain=lambda cls, pid, frames, event=None: FRAMES)
    ev = wakeup(frames=(1, 2, 3))
    assert EventPrinter().frames(ev) == [
        "    ffffffff813a5039 __traceiter_sched_wakeup+0x29 ([kernel.kallsyms])",
        "    0000000000401020 main+0x0 (/usr/bin/prog)",
        "    00007f0000001000 Unknown+0x0 ([unknown])",
    ]
    assert EventPrinter().frames(wakeup()) == []


@needs_libtraceevent
def test_print_writes_the_line_then_the_frames():
    out = io.StringIO()
    printer = EventPrinter(out=out)
    _ring.set_hooks(print_event=printer, resolve_callchain=lambda cls, pid, frames, event=None: FRAMES[:1])
    ev = wakeup(frames=(1,))
    ev.print(timestamp=False)
    ev.print(timestamp=False, callchain=False)
    assert out.getvalue() == (
        "          <idle>      0 dN.7 [000] 767.594114: sched:sched_wakeup: comm=bash pid=8738 prio=120 target_cpu=000\n"
        "    ffffffff813a5039 __traceiter_sched_wakeup+0x29 ([kernel.kallsyms])\n"
        "          <idle>      0 dN.7 [000] 767.594114: sched:sched_wakeup: comm=bash pid=8738 prio=120 target_cpu=000\n"
    )
    out.truncate(0)
    out.seek(0)
    ev.print()
    first = out.getvalue().splitlines()[0]
    assert first.endswith("          <idle>      0 dN.7 [000] 767.594114: sched:sched_wakeup: comm=bash pid=8738 "
                          "prio=120 target_cpu=000")
    assert len(first) == len("YYYY-MM-DD HH:MM:SS.uuuuuu ") + len(printer.line(ev, timestamp=False))


def test_bpf_collected_events_show_x_for_the_unknown_irq_state():
    """Events whose class says the header was filled by BPF print 'X' in the irqs-off column."""
    from ebpfprof.run.events import field_specs

    fmt = fixture_format("sched_sched_wakeup")
    cls = _ring.EventClass("sched:sched_wakeup", None, field_specs(fmt), support.event_spec(fmt))
    raw = struct.pack("<HBBi16siii", fmt.id, 0, 0, 7, b"bash", 8738, 120, 0)
    ev = _ring.make_event(cls, 767_594_114_000, 7, 7, 0, raw)
    line = EventPrinter().line(ev, timestamp=False)
    assert " X... [000] 767.594114: sched:sched_wakeup: comm=bash pid=8738 prio=120 target_cpu=000" in line
