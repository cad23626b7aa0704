#!/usr/bin/env -S ebpfprof python -e sched:sched_process_fork,sched:sched_process_exec,sched:sched_process_exit
"""New programs as they start, one line per exec(), like BCC's execsnoop; at exit, how often
each program ran and how long it lived.

    ebpfprof python -e sched:sched_process_fork,sched:sched_process_exec,sched:sched_process_exit \\
        tools/exec_snoop.py [TOP]

Each line: seconds since the first event, PID, PPID (the process that forked it, from
sched_process_fork; else /proc), the file that was exec'd (from the tracepoint itself), and
the arguments. The tracepoint carries no arguments: they are read from /proc/PID/cmdline when
the event is handled, up to ~20 ms later, so processes already gone by then show "-".
The exit summary lists the TOP (default 10) programs by execs with the median lifetime
(exec to exit) of those that exited while tracing.

Only some programs? Filter the exec events in the kernel, e.g.
`-e 'sched:sched_process_fork,sched:sched_process_exec/filename~"/usr/bin/*"/,sched:sched_process_exit'`.
"""
import sys
from collections import defaultdict

TOP = int(sys.argv[1]) if len(sys.argv) > 1 else 10

parent = {}                    # tid of a new task -> pid (tgid) of the process that forked it
running = {}                   # pid -> (program, exec time ns)
lifetimes = defaultdict(list)  # program -> [ns from exec to exit]
execs = defaultdict(int)       # program -> exec() calls seen
first_time = None


def _read_proc(pid, name):
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read()
    except OSError:
        return None


def _ppid(pid):
    if pid in parent:
        return parent.pop(pid)
    stat = _read_proc(pid, "stat")
    if stat is None:
        return "?"
    return int(stat[stat.rfind(b")") + 2:].split()[1])   # the field after "(comm) state"


def _args(pid):
    cmdline = _read_proc(pid, "cmdline")
    if not cmdline:
        return "-"
    args = " ".join(a.decode(errors="replace") for a in cmdline.rstrip(b"\0").split(b"\0")[1:])
    return (args[:77] + "...") if len(args) > 80 else args or "-"


def __init__():
    print(f"{'TIME(s)':<10} {'PID':>7} {'PPID':>7}  {'PROGRAM':<28} ARGS")


def sched__sched_process_fork(event):
    parent[event.child_pid] = event._pid          # _pid: the forking process (its tgid)


def sched__sched_process_exec(event):
    global first_time
    if first_time is None:
        first_time = event._time
    pid, program = event.pid, event.filename
    execs[program] += 1
    running[pid] = (program, event._time)
    print(f"{(event._time - first_time) / 1e9:<10.3f} {pid:>7} {_ppid(pid):>7}  {program:<28} {_args(pid)}",
          flush=True)


def sched__sched_process_exit(event):
    parent.pop(event.pid, None)                   # a task that never exec'd
    if event.group_dead:                          # the process's last thread
        started = running.pop(event._pid, None)
        if started is not None:
            program, t0 = started
            lifetimes[program].append(event._time - t0)


def __exit__():
    rows = sorted(execs.items(), key=lambda kv: -kv[1])[:TOP]
    print(f"\n{'EXECS':>6} {'EXITED':>6} {'MEDIAN LIFE ms':>15}  PROGRAM")
    for program, n in rows:
        lives = sorted(lifetimes.get(program, []))
        median = f"{lives[len(lives) // 2] / 1e6:.2f}" if lives else "-"
        print(f"{n:>6} {len(lives):>6} {median:>15}  {program}")
