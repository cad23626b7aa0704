"""The bare-loop baseline, measured inside the traced run, in step with it.

This VM's speed drifts by a third within minutes, so a baseline measured before or after the
run does not compare; nor does one in a process of its own: this VM's clock drops when a vCPU
idles, and the consumer idles between drains, so the same handler runs up to 1.5x slower in it
than in a process that never sleeps. A bench script hands its handler to `Pairing` and runs with `-i 50`: every 50 ms
`__interval__` closes a window of live handling (this thread's CPU time and the events handled
in it) and then times the same handler called with one prebuilt PerfEvent, in a bare CPython
loop (issue #4's baseline) and from C (`_ring.call_loop`, vectorcall only: the floor). Each
live window is compared with the mean of the loops on either side of it; the report gives the
median of those ratios.

Not a handler script itself (it defines no handler): bench scripts import it.
"""
from __future__ import annotations

import json
import os
import statistics
import struct
import time

from ebpfprof import _ring
from ebpfprof.kernel.tracefs import read_format
from ebpfprof.run.events import field_specs

LOOP_NS = 1_000_000       # each loop runs about 1 ms: 4 % of a 50 ms window with both loops
MIN_WINDOW_EVENTS = 20_000


def bare_loop(handler, event, calls: int) -> None:
    for _ in range(calls):
        handler(event)


def prebuilt_event():
    """A syscalls:sys_enter_getppid PerfEvent (the bench's event), as the reader would make it."""
    fmt = read_format("syscalls", "sys_enter_getppid")
    cls = _ring.EventClass("syscalls:sys_enter_getppid", None, field_specs(fmt))
    pid = os.getpid()
    raw = struct.pack("<HBBii", fmt.id, 0, 0, pid, 110).ljust(fmt.fixed_size, b"\0")
    return _ring.make_event(cls, time.clock_gettime_ns(time.CLOCK_MONOTONIC), pid, pid, 1, raw)


def prebuilt_page_fault():
    """A page-faults PerfEvent (IP TID TIME ADDR CPU PERIOD), as the perf ring reader makes it.
    The selector comes from the run's own parser (a hand-made stand-in broke when plan() read
    a new selector attribute, and the bench then had no loop to compare with)."""
    from ebpfprof.lang.selector.parser import parse_selectors
    from ebpfprof.profilers import page_faults
    from ebpfprof.run.events import sample_field_specs

    samples = page_faults.plan(parse_selectors("page-faults")[0], _NoConfig()).samples
    cls = _ring.EventClass("page-faults", None, sample_field_specs(samples), None, sample=samples.layout)
    pid, now = os.getpid(), time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    body = struct.pack("<QIIQQIIQ", 0x401000, pid, pid, now, 0x7F0000001000, 1, 0, 1)
    return _ring.make_event(cls, now, pid, pid, 1, body)


def prebuilt_uprobe(func: str = "f"):
    """A uprobe:FUNC PerfEvent (common header, __probe_ip, arg1..arg6), as the BPF reader makes it."""
    from ebpfprof.resolve.probe_format import probe_format, probe_registers

    fmt, _plans = probe_format("uprobe", func, probe_registers())
    cls = _ring.EventClass(f"uprobe:{func}", None, field_specs(fmt))
    pid = os.getpid()
    raw = struct.pack("<HBBi7Q", fmt.id, 0, 0, pid, 0x401130, 1, 2, 3, 4, 5, 6)
    return _ring.make_event(cls, time.clock_gettime_ns(time.CLOCK_MONOTONIC), pid, pid, 1, raw)


class _NoConfig:
    """The run's defaults that page-faults' plan() reads (no -g, both callchains)."""
    call_graph = False
    kernel_callchain = user_callchain = True


class Pairing:
    def __init__(self, handler, handled, make_event=prebuilt_event,
                 min_window_events: int = MIN_WINDOW_EVENTS) -> None:
        self.min_window_events = min_window_events     # fewer: the window is left out
        self.handler = handler          # the script's handler
        self.handled = handled          # () -> how many times the handler has run
        self.make_event = make_event    # () -> the PerfEvent the bare loops call it with
        self.event = None
        self.loop_calls = 0             # handler calls made by the loops, not by events
        self.loop_cpu_ns = 0
        self.calls = 1000               # per loop, resized to take about LOOP_NS
        self.loops: list[tuple[float, float]] = []   # ns per call: (Python loop, C loop)
        self.windows: list[tuple[int, int]] = []   # (cpu ns, events) of each live window
        self.mark: tuple[int, int] | None = None

    def live_events(self) -> int:
        return self.handled() - self.loop_calls

    def interval(self) -> None:
        now, events = time.thread_time_ns(), self.live_events()
        if self.mark is not None:
            self.windows.append((now - self.mark[0], events - self.mark[1]))
        if self.event is None:
            self.event = self.make_event()
            bare_loop(self.handler, self.event, self.calls)     # warm up
            self.loop_calls += self.calls
        calls = self.calls
        t0 = time.thread_time_ns()
        bare_loop(self.handler, self.event, calls)
        t1 = time.thread_time_ns()
        _ring.call_loop(self.handler, self.event, calls)
        t2 = time.thread_time_ns()
        self.loops.append(((t1 - t0) / calls, (t2 - t1) / calls))
        self.loop_calls += 2 * calls
        self.calls = max(1000, int(LOOP_NS / max(1.0, (t1 - t0) / calls)))
        self.loop_cpu_ns += time.thread_time_ns() - now
        self.mark = (time.thread_time_ns(), self.live_events())

    def report(self, **extra) -> None:
        """Print the BENCH line: whole-run figures without the loops, and the paired ratio."""
        with open("/proc/self/schedstat") as f:
            cpu_ns = int(f.read().split()[0])
        ratios, c_ratios, live, loop, c_loop = [], [], [], [], []
        for i, (cpu, events) in enumerate(self.windows):
            if events < self.min_window_events or i + 1 >= len(self.loops):
                continue
            py = (self.loops[i][0] + self.loops[i + 1][0]) / 2
            c = (self.loops[i][1] + self.loops[i + 1][1]) / 2
            live.append(cpu / events)
            loop.append(py)
            c_loop.append(c)
            ratios.append(cpu / events / py)
            c_ratios.append(cpu / events / c)
        med = lambda xs: statistics.median(xs) if xs else None  # noqa: E731
        result = {
            "events": self.live_events(), "cpu_ns": cpu_ns - self.loop_cpu_ns,
            "windows": len(ratios), "window_ns": med(live), "loop_ns": med(loop),
            "c_loop_ns": med(c_loop), "ratio": med(ratios), "c_ratio": med(c_ratios),
        }
        result.update(extra)
        print("BENCH " + json.dumps(result), flush=True)
