#!/usr/bin/env -S ebpfprof python -e sched:sched_switch,profile/-g/ --order
"""CPU time per command, two ways: from context switches, and from profile samples taken in
each run slice, with the function the samples found it in most.

    ebpfprof python -e sched:sched_switch,profile/-g/ --order tools/cpu_slices.py [TOP]

sched_switch starts and ends a task's slice on a CPU; every `profile` sample (997 Hz per CPU,
cpu-clock here) taken on that CPU while the slice lasts belongs to it. --order is what makes
this work: samples and switches come from different rings, and only in time order does a
sample fall between the right pair of switches. The exit summary lists the TOP (default 10)
commands by time on CPU: their slices, the time the switches add up to, the mean slice, the
samples taken inside their slices and the time those stand for (samples x period), and the
hottest function. Samples taken outside any slice seen (before a CPU's first switch, or of a
task other than the one switched in) are counted apart. The idle task (pid 0) is left out.
"""
import sys
from collections import Counter, defaultdict

TOP = int(sys.argv[1]) if len(sys.argv) > 1 else 10

running = {}                     # cpu -> [tid, switched-in time, samples, Counter(function), sampled ns]
slices = Counter()               # comm -> slices ended
oncpu_ns = Counter()             # comm -> ns on CPU, from switches
sampled_ns = Counter()           # comm -> ns the samples in its slices stand for
samples = Counter()              # comm -> samples in its slices
functions = defaultdict(Counter) # comm -> {innermost function: samples}
outside = 0


def sched__sched_switch(event):
    cpu, now = event._cpu, event._time
    cur = running.get(cpu)
    if cur is not None and cur[0] == event.prev_pid and cur[0] != 0:
        comm = event.prev_comm                   # the name at the end: after an exec, the new one
        slices[comm] += 1
        oncpu_ns[comm] += now - cur[1]
        samples[comm] += cur[2]
        functions[comm].update(cur[3])
        sampled_ns[comm] += cur[4]
    running[cpu] = [event.next_pid, now, 0, Counter(), 0]


def profile(event):
    global outside
    if event._pid == 0:
        return
    cur = running.get(event._cpu)
    if cur is None or cur[0] != event._tid:
        outside += 1
        return
    cur[2] += 1
    chain = event.callchain
    cur[3][chain[0]["symbol"] if chain else hex(event.ip)] += 1
    cur[4] += event.period


def __exit__():
    print(f"{'COMMAND':<16} {'SLICES':>7} {'ON-CPU ms':>10} {'MEAN us':>9} {'SAMPLES':>8} "
          f"{'SAMPLED ms':>10}  TOP FUNCTION")
    for comm, ns in oncpu_ns.most_common(TOP):
        top = functions[comm].most_common(1)
        hot = f"{top[0][0]} ({100 * top[0][1] / samples[comm]:.0f}%)" if top else "-"
        print(f"{comm:<16} {slices[comm]:>7} {ns / 1e6:>10.1f} {ns / slices[comm] / 1e3:>9.1f} "
              f"{samples[comm]:>8} {sampled_ns[comm] / 1e6:>10.1f}  {hot}")
    print(f"{outside} samples outside the slices seen")
