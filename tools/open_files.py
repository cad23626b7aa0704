#!/usr/bin/env -S ebpfprof python -e syscalls:sys_enter_openat,syscalls:sys_exit_openat,sched:sched_process_exit
"""openat() calls per command: how many, how (read, write, create), how many failed and why.

    ebpfprof python -e syscalls:sys_enter_openat,syscalls:sys_exit_openat,sched:sched_process_exit \\
        tools/open_files.py [TOP]

sys_enter_openat gives the flags, sys_exit_openat on the same thread the result (an fd, or
-errno); the exit summary lists the TOP (default 15) commands by calls, with how many
processes of each made them. Add -i MS for a table every interval (each table then covers its
own interval, the last one at exit).

The file names are not there: sys_enter_openat's `filename` is the address of the name in the
caller's memory, and a tracepoint program cannot read user memory, so the name stays behind.
Command names come from sched_process_exit for processes that end while tracing, else from
/proc/PID/comm when the table is printed.

Only failures? Let the kernel drop the rest: -e 'syscalls:sys_exit_openat/ret<0/' (the
enter side is then only used for the flags of the calls that fail).
"""
import errno
import sys
from collections import Counter, defaultdict

TOP = int(sys.argv[1]) if len(sys.argv) > 1 else 15

O_ACCMODE, O_WRONLY, O_RDWR, O_CREAT = 0o3, 0o1, 0o2, 0o100

pending = {}                         # tid -> flags of its openat() in progress
names = {}                           # pid -> command name


class Stats:
    __slots__ = ("calls", "reads", "writes", "creates", "errors", "pids")

    def __init__(self):
        self.calls = self.reads = self.writes = self.creates = 0
        self.errors = Counter()      # errno name -> count
        self.pids = set()

    def add(self, other):
        self.calls += other.calls
        self.reads += other.reads
        self.writes += other.writes
        self.creates += other.creates
        self.errors.update(other.errors)
        self.pids |= other.pids


stats = defaultdict(Stats)           # pid -> Stats


def _name(pid):
    name = names.get(pid)
    if name is None:
        try:
            with open(f"/proc/{pid}/comm") as f:
                name = f.read().rstrip("\n")
        except OSError:
            name = f"[pid {pid}]"
        names[pid] = name
    return name


def sched__sched_process_exit(event):
    if event.group_dead:             # the last thread: the process is gone from /proc soon
        names[event._pid] = event.comm


def syscalls__sys_enter_openat(event):
    pending[event._tid] = event.flags


def syscalls__sys_exit_openat(event):
    flags = pending.pop(event._tid, None)
    s = stats[event._pid]
    s.calls += 1
    if flags is not None:
        mode = flags & O_ACCMODE
        s.reads += mode in (0, O_RDWR)
        s.writes += mode in (O_WRONLY, O_RDWR)
        s.creates += bool(flags & O_CREAT)
    if event.ret < 0:
        s.errors[errno.errorcode.get(-event.ret, str(-event.ret))] += 1


def _table():
    by_command = defaultdict(Stats)
    for pid, s in stats.items():
        s.pids.add(pid)
        by_command[_name(pid)].add(s)
    print(f"{'COMMAND':<16} {'PROCS':>5} {'OPENS':>7} {'READ':>6} {'WRITE':>6} {'CREATE':>6} {'FAILED':>6}  ERRORS")
    rows = sorted(by_command.items(), key=lambda kv: -kv[1].calls)[:TOP]
    for name, s in rows:
        failed = sum(s.errors.values())
        why = " ".join(f"{e}:{n}" for e, n in s.errors.most_common(3))
        print(f"{name:<16} {len(s.pids):>5} {s.calls:>7} {s.reads:>6} {s.writes:>6} {s.creates:>6} {failed:>6}  {why}")


def __interval__():
    _table()
    print(flush=True)
    stats.clear()


def __exit__():
    _table()
