#!/usr/bin/env -S ebpfprof python -e sched:sched_wakeup,sched:sched_wakeup_new,sched:sched_switch -i 1000
"""Wakeup-to-run latency per command: how long woken tasks wait for a CPU.

    ebpfprof python -e sched:sched_wakeup,sched:sched_wakeup_new,sched:sched_switch -i 1000 \\
        tools/wakeup_latency.py [TOP]

A task is woken (sched_wakeup / sched_wakeup_new) and later switched in (sched_switch with
next_pid == its pid); the time between the two is its scheduling latency. Every interval prints
how many wakeups completed; the exit summary lists the TOP (default 10) commands by wakeups with
their p50/p99/max latency.
"""
import sys
from collections import defaultdict

TOP = int(sys.argv[1]) if len(sys.argv) > 1 else 10

woken = {}                       # pid -> wakeup time (ns)
latencies = defaultdict(list)    # comm -> [latency ns]
completed = 0


def _wakeup(event):
    woken[event.pid] = event._time


sched__sched_wakeup = _wakeup
sched__sched_wakeup_new = _wakeup


def sched__sched_switch(event):
    global completed
    start = woken.pop(event.next_pid, None)
    if start is not None and event._time >= start:
        latencies[event.next_comm].append(event._time - start)
        completed += 1


def __interval__():
    global completed
    print(f"{completed} wakeups completed in the last interval, {len(woken)} tasks still waiting")
    completed = 0


def _pct(values, p):
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def __exit__():
    rows = sorted(latencies.items(), key=lambda kv: -len(kv[1]))[:TOP]
    print(f"\n{'COMMAND':<16} {'WAKEUPS':>8} {'p50 us':>9} {'p99 us':>9} {'max us':>9}")
    for comm, values in rows:
        values.sort()
        print(f"{comm:<16} {len(values):>8} {_pct(values, 50) / 1000:>9.1f} "
              f"{_pct(values, 99) / 1000:>9.1f} {values[-1] / 1000:>9.1f}")
