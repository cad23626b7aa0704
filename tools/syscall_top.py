#!/usr/bin/env -S ebpfprof python -e raw_syscalls:sys_enter,sched:sched_process_exit -i 1000
"""Top system calls per command, every interval: who is making which syscalls, how often.

    ebpfprof python -e raw_syscalls:sys_enter,sched:sched_process_exit -i 1000 tools/syscall_top.py [TOP]

Every -i interval prints the TOP (default 10) (command, syscall) pairs with their calls per
second, and the total; the exit summary does the same for the whole run. Syscall numbers are
named from the kernel's <asm/unistd_64.h> when it is installed (linux-libc-dev), else shown
as numbers. raw_syscalls:sys_enter carries no command name: processes that exit say theirs in
sched_process_exit, the others' is read from /proc/PID/comm when the table is printed.

ebpfprof's own syscalls (its waits on the ring) are left out. To watch one process only, use
-p PID: the kernel then drops everybody else's syscalls before they are copied.
"""
import os
import re
import sys
import time
from collections import Counter

TOP = int(sys.argv[1]) if len(sys.argv) > 1 else 10
UNISTD = ("/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm/unistd_64.h",
          "/usr/include/asm-generic/unistd.h")


def _syscall_names():
    for path in UNISTD:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        names = {int(nr): name for name, nr in re.findall(r"#define __NR_(\w+)\s+(\d+)\b", text)}
        if names:
            return names
    return {}


NAMES = _syscall_names()
ME = os.getpid()

interval_counts = Counter()      # (pid, syscall nr) -> calls this interval
total_counts = Counter()         # (comm, syscall nr) -> calls in the whole run
comms = {}                       # pid -> comm, forgotten after every interval
last = started = time.monotonic()


def __init__():
    global last, started
    last = started = time.monotonic()       # the module loads before the tracing begins


def raw_syscalls__sys_enter(event):
    pid = event._pid
    if pid != ME:
        interval_counts[pid, event.id] += 1


def sched__sched_process_exit(event):
    if event.group_dead:             # the last thread: the process is gone from /proc soon
        comms[event._pid] = event.comm


def _comm(pid):
    comm = comms.get(pid)
    if comm is None:
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().rstrip("\n")
        except OSError:
            comm = f"[pid {pid}]"
        comms[pid] = comm
    return comm


def _name(nr):
    return NAMES.get(nr, str(nr))


def _table(counts, seconds, title):
    total = sum(counts.values())
    print(f"{title}: {total:,} syscalls, {total / seconds:,.0f}/s")
    print(f"  {'COMMAND':<16} {'SYSCALL':<20} {'CALLS':>10} {'PER SEC':>10}")
    for (comm, nr), n in counts.most_common(TOP):
        print(f"  {comm:<16} {_name(nr):<20} {n:>10,} {n / seconds:>10,.0f}")


def _by_comm(counts):
    out = Counter()
    for (pid, nr), n in counts.items():
        out[_comm(pid), nr] += n
    return out


def __interval__():
    global last
    now = time.monotonic()
    per_comm = _by_comm(interval_counts)
    total_counts.update(per_comm)
    _table(per_comm, now - last, time.strftime("%H:%M:%S"))
    print(flush=True)
    interval_counts.clear()
    comms.clear()
    last = now


def __exit__():
    total_counts.update(_by_comm(interval_counts))
    _table(total_counts, time.monotonic() - started, "whole run")
