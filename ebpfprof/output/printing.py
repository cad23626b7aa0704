"""``event.print()``: one line in the perf/ftrace layout, then one line per callchain frame.

::

    2026-11-23 21:48:14.624601            sleep   8743 X... [000] 767.594114: sched:sched_wakeup: comm=bash pid=8738 prio=120 target_cpu=000
        ffffffff813a5039 __traceiter_sched_wakeup+0x29 ([kernel.kallsyms])

wall-clock time (``_realtime``), comm ``%16s``, tid ``%6u``, the irq/preempt flags, ``[cpu]``,
``sec.usec`` of ``_time``, the event's name, then its fields rendered with the tracepoint's own
``print fmt`` (libtraceevent). A profiler's sample has no flags column, and its own text after
the name (``profile: 1003009 cpu-clock``; see ``profilers/``).
"""
from __future__ import annotations

import os
import sys
import time

from ebpfprof import _ring
from ebpfprof.kernel.event_format import EventFormat

__all__ = ["EventPrinter", "format_flags"]

# ftrace's TRACE_FLAG_* bits in common_flags (include/linux/trace_events.h, Linux 6.13+;
# before 6.13, 0x02 was IRQS_NOSUPPORT, shown as 'X' in the irqs-off column)
_IRQS_OFF = 0x01
_NEED_RESCHED_LAZY = 0x02
_NEED_RESCHED = 0x04
_HARDIRQ = 0x08
_SOFTIRQ = 0x10
_PREEMPT_RESCHED = 0x20
_NMI = 0x40
_BH_OFF = 0x80

_RESCHED = {
    _NEED_RESCHED | _NEED_RESCHED_LAZY | _PREEMPT_RESCHED: "B",
    _NEED_RESCHED | _PREEMPT_RESCHED: "N",
    _NEED_RESCHED_LAZY | _PREEMPT_RESCHED: "L",
    _NEED_RESCHED | _NEED_RESCHED_LAZY: "b",
    _NEED_RESCHED: "n",
    _NEED_RESCHED_LAZY: "l",
    _PREEMPT_RESCHED: "p",
}


def format_flags(flags: int, preempt_count: int, *, known: bool = True) -> str:
    """The 4-character latency column ftrace prints: irqs-off, need-resched, irq context, depth.

    ``known=False`` marks a header BPF could not see (see bpf/prelude.h): the irqs-off column
    shows 'X', as ftrace does where irq state cannot be read.
    """
    bh_off = flags & _BH_OFF
    if not known:
        irqs = "X"
    else:
        irqs = ("D" if flags & _IRQS_OFF and bh_off else "d" if flags & _IRQS_OFF
                else "b" if bh_off else ".")
    resched = _RESCHED.get(flags & (_NEED_RESCHED | _NEED_RESCHED_LAZY | _PREEMPT_RESCHED), ".")
    hard, soft, nmi = flags & _HARDIRQ, flags & _SOFTIRQ, flags & _NMI
    ctx = ("Z" if nmi and hard else "z" if nmi else "H" if hard and soft else "h" if hard
           else "s" if soft else ".")
    depth = preempt_count & 0xF
    return f"{irqs}{resched}{ctx}{depth:x}" if depth else f"{irqs}{resched}{ctx}."


class _Comms:
    """tid → comm: what the run saw the task named (``task_comm``, the BPF comm map), else
    /proc, cached; a task that is gone and was never named during the run prints as <...>."""

    def __init__(self, task_comm=None) -> None:
        self._cache: dict[int, str] = {}
        self._task_comm = task_comm

    def remember_tasks_of(self, pid: int) -> None:
        """Name the threads of a process now, while /proc has them: it may exit before its
        events are printed, and the comm tracker saw it named only if that happened later."""
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    self._cache[int(tid)] = f.read().rstrip("\n")
            except (OSError, ValueError):
                pass

    def __getitem__(self, tid: int) -> str:
        if self._task_comm is not None and tid != 0:
            comm = self._task_comm(tid)
            if comm:
                return comm
        comm = self._cache.get(tid)
        if comm is None:
            if tid == 0:
                comm = "<idle>"
            else:
                try:
                    with open(f"/proc/{tid}/comm") as f:
                        comm = f.read().rstrip("\n")
                except OSError:
                    return "<...>"
            if len(self._cache) > 65536:
                self._cache.clear()
            self._cache[tid] = comm
        return comm


class EventPrinter:
    """The print hook given to the extension: ``printer(event, timestamp, callchain)``.

    ``task_comm(tid) -> str | None`` is asked first for a task's name (the session's sources).
    """

    def __init__(self, renderer=None, out=None, task_comm=None) -> None:
        self._renderer = renderer
        self._out = out
        self._comms = _Comms(task_comm)

    def remember_tasks_of(self, pid: int) -> None:
        self._comms.remember_tasks_of(pid)

    def _render_fields(self, fmt: EventFormat | None, event) -> str:
        if fmt is None:
            return " ".join(f"{k}={v}" for k, v in event.items() if not k.startswith("_"))
        if self._renderer is None:
            from ebpfprof.output.printfmt import TraceEventRenderer
            from ebpfprof.symbols import default_resolver

            self._renderer = TraceEventRenderer([], kernel_symbols=default_resolver().kernel)
        text = self._renderer.render(fmt, _ring.event_raw(event), event._cpu, event._time)
        if not text:
            text = " ".join(f"{f.name}={event[f.name]}" for f in fmt.own_fields)
        return text

    def line(self, event, timestamp: bool = True) -> str:
        info = _ring.event_class(event).info
        fmt = getattr(info, "format", None)
        t = event._time
        head = ""
        if timestamp:
            real = event._realtime
            head = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(real // 1_000_000_000))
            head += f".{real // 1000 % 1_000_000:06d} "
        sample = getattr(info, "sample", None)
        if sample is not None:
            # A profiler's line, as perf-prof prints it: no irq/preempt column (perf samples have none)
            return (f"{head}{self._comms[event._tid]:>16} {event._tid:6d} [{event._cpu:03d}] "
                    f"{t // 1_000_000_000}.{t // 1000 % 1_000_000:06d}: {sample.print_name or event._event}: {sample.render(event)}")
        flags = "...."
        if fmt is not None and "common_flags" in event:
            # Events collected by BPF carry a header it filled itself (header_known False).
            flags = format_flags(event.common_flags, event.common_preempt_count,
                                 known=getattr(info, "header_known", True))
        return (f"{head}{self._comms[event._tid]:>16} {event._tid:6d} {flags} [{event._cpu:03d}] "
                f"{t // 1_000_000_000}.{t // 1000 % 1_000_000:06d}: {event._event}: "
                f"{self._render_fields(fmt, event)}")

    def frames(self, event) -> list[str]:
        return [f"    {'':16} {f['symbol']} ({f['dso']}:{f['offset']})" if f.get("python") else
                f"    {f['addr']:016x} {f['symbol']}+0x{f['offset']:x} ({f['dso']})"
                for f in event._callchain]

    def __call__(self, event, timestamp: bool = True, callchain: bool = True) -> None:
        out = self._out or sys.stdout
        lines = [self.line(event, timestamp)]
        if callchain:
            lines.extend(self.frames(event))
        out.write("\n".join(lines) + "\n")
