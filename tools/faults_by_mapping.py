#!/usr/bin/env -S ebpfprof python -e page-faults,sched:sched_process_exec -i 1000
"""Page faults per process and mapping: which file, heap, stack or anonymous region faults in.

    ebpfprof python -e page-faults,sched:sched_process_exec -i 1000 tools/faults_by_mapping.py [TOP]

`page-faults` records every page fault (period 1) with its data address (`addr`). The address
is looked up in the faulting process's /proc/PID/maps, read when the process faults first and
read again when an address is in none of its mappings (a new mmap) and after an exec
(sched_process_exec: the process has new mappings). Every interval prints the
TOP (default 10) (process, mapping) pairs of that interval, the exit summary the same for the
whole run. A mapping is its file, [heap], [stack], or for anonymous memory
`[anon START-END]`, the range as /proc/PID/maps gives it.

A fault is the first touch of a page (or a copy-on-write): memory that is already mapped in
faults no more, so a steady program shows few. -p PID watches one process (and the children
it starts). The maps are read when the fault reaches the script, some 20 ms after it: the
faults of a process that has exited by then show as [exited] (its command as ?), and addresses
it has unmapped since as [unmapped].
"""
import bisect
import sys
import time
from collections import Counter

TOP = int(sys.argv[1]) if len(sys.argv) > 1 else 10

maps = {}                    # pid -> (sorted starts, [(start, end, name)])
names = {}                   # pid -> comm
interval_faults = Counter()  # (pid, mapping) -> faults this interval
total_faults = Counter()     # (comm, pid, mapping) -> faults in the whole run


def _read_maps(pid):
    rows = []
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                parts = line.split(None, 5)
                start, end = (int(x, 16) for x in parts[0].split("-"))
                name = parts[5].strip() if len(parts) > 5 else ""
                rows.append((start, end, name or f"[anon {parts[0]}]"))
        with open(f"/proc/{pid}/comm") as f:
            names[pid] = f.read().rstrip("\n")
    except OSError:
        pass
    rows.sort()
    maps[pid] = ([r[0] for r in rows], rows)


def _mapping(pid, addr, retry=True):
    if pid not in maps:
        _read_maps(pid)
    starts, rows = maps[pid]
    i = bisect.bisect_right(starts, addr) - 1
    if i >= 0 and addr < rows[i][1]:
        return rows[i][2]
    if not rows:
        return "[exited]"
    if retry:                                    # mapped since we read the maps
        _read_maps(pid)
        return _mapping(pid, addr, retry=False)
    return "[kernel]" if addr >= 1 << 63 else "[unmapped]"


def sched__sched_process_exec(event):
    maps.pop(event.pid, None)                    # a new program: its old mappings are gone


def page_faults(event):
    pid = event._pid
    interval_faults[pid, _mapping(pid, event.addr)] += 1


def _table(counts, seconds, title):
    total = sum(counts.values())
    print(f"{title}: {total:,} faults, {total / seconds:,.0f}/s")
    print(f"  {'COMMAND':<16} {'PID':>7} {'FAULTS':>9}  MAPPING")
    for (comm, pid, mapping), n in counts.most_common(TOP):
        print(f"  {comm:<16} {pid:>7} {n:>9,}  {mapping}")


def _named(counts):
    return Counter({(names.get(pid, "?"), pid, m): n for (pid, m), n in counts.items()})


last = started = time.monotonic()


def __init__():
    global last, started
    last = started = time.monotonic()


def __interval__():
    global last
    now = time.monotonic()
    named = _named(interval_faults)
    total_faults.update(named)
    _table(named, now - last, time.strftime("%H:%M:%S"))
    print(flush=True)
    interval_faults.clear()
    last = now


def __exit__():
    total_faults.update(_named(interval_faults))
    _table(total_faults, time.monotonic() - started, "whole run")
