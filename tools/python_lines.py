#!/usr/bin/env -S ebpfprof python -e syscalls:sys_enter_openat --python-callchain
"""Which Python line makes these system calls: events counted by their innermost Python frame.

    ebpfprof python -e syscalls:sys_enter_openat --python-callchain tools/python_lines.py [TOP [PREFIX]]
    ebpfprof python -e syscalls:sys_enter_openat --python-callchain -p PID tools/python_lines.py

Every event's Python stack is read in the kernel (--python-callchain); the innermost Python
frame is the line that made the call (for open(), the line calling open(); inside a library
function, the library's line). With PREFIX, the innermost frame in a file whose name starts
with PREFIX is counted instead (your code's line that called the library: PREFIX /srv/app/),
else the innermost. At exit the TOP (default 15) lines by events, as COUNT FILE:LINE FUNCTION;
with -i MS also every interval, for that interval. Any other tracepoint or probe selector works
the same way, and several at once (the table then has an EVENT column):

    ebpfprof python -e 'syscalls:sys_enter_write/fd==1/' --python-callchain -p PID tools/python_lines.py
    ebpfprof python -e uprobe:c:malloc --python-callchain -p PID tools/python_lines.py

Which processes: those of -p/-t, else every process running when the trace starts; CPython
3.11-3.13 only (ebpfprof -v says which got Python frames, and why others did not). Events with
no Python frame (another program, a process started after the trace, a thread in C code) are
counted as "[no Python frame] COMMAND". The frames are named from the process's memory, here
in the handler: a process that exits right after its calls may be gone by then, and its lines
show as "[unknown]".
"""
import sys
import time
from collections import Counter

TOP = int(sys.argv[1]) if len(sys.argv) > 1 else 15
PREFIX = sys.argv[2] if len(sys.argv) > 2 else None

interval_counts = Counter()        # (event, file, line, function) -> events this interval
total_counts = Counter()           # the same for the whole run
events_seen = set()                # _event names: an EVENT column when there are several
comms = {}                         # pid -> command, for events without Python frames


def _comm(pid):
    comm = comms.get(pid)
    if comm is None:
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().rstrip("\n")
        except OSError:
            comm = f"pid {pid}"
        comms[pid] = comm
    return comm


def _frame(callchain):
    """The innermost Python frame (under PREFIX, if there is one there), or None."""
    python = [f for f in callchain if f.get("python")]
    if PREFIX:
        return next((f for f in python if f["dso"].startswith(PREFIX)), python[0] if python else None)
    return python[0] if python else None


def __sample__(event):
    events_seen.add(event._event)
    frame = _frame(event._callchain)     # read now: the names are read from the live process
    if frame is None:
        interval_counts[event._event, "", 0, f"[no Python frame] {_comm(event._pid)}"] += 1
    else:
        interval_counts[event._event, frame["dso"], frame["offset"], frame["symbol"]] += 1


def _table(counts, title):
    total = sum(counts.values())
    print(f"{title}: {total:,} events from {len(counts):,} line{'' if len(counts) == 1 else 's'}")
    width = max(map(len, events_seen)) if len(events_seen) > 1 else 0   # an EVENT column
    print(f"  {'COUNT':>8}  " + (f"{'EVENT':<{width}}  " if width else "") + "FILE:LINE FUNCTION")
    for (name, file, line, function), n in counts.most_common(TOP):
        where = f"{file}:{line} " if file else ""
        print(f"  {n:>8,}  " + (f"{name:<{width}}  " if width else "") + f"{where}{function}")


def __interval__():
    total_counts.update(interval_counts)
    _table(interval_counts, time.strftime("%H:%M:%S"))
    print(flush=True)
    interval_counts.clear()


def __exit__():
    total_counts.update(interval_counts)
    _table(total_counts, "whole run")
