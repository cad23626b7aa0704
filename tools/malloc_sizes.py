#!/usr/bin/env -S ebpfprof python -e uprobe:c:malloc,uretprobe:c:malloc//stack/max-stack=3/
"""malloc() sizes by call site: which code allocates how much, with a histogram of sizes per site.

    ebpfprof python -e uprobe:c:malloc,uretprobe:c:malloc//stack/max-stack=3/ tools/malloc_sizes.py [TOP]

Two probes on libc's malloc(): the entry gives the size (arg1, size_t), the return gives the
result (retval, NULL when it failed) and the call site. They are paired by thread: a thread is
inside one malloc() at a time. The call site is the first frame of the return probe's
callchain: the instruction after the call, in the caller, named as function+offset. The
entry's callchain cannot give it (a uprobe on the first instruction of a function that does
not start with `push %rbp`, as libc's malloc, misses the direct caller), so the return probe
carries the stack. max-stack=3 keeps two callers of the site too: when the program keeps frame
pointers they are shown after it ("site <- caller <- its caller") and tell apart the callers
of a wrapper (xmalloc); without frame pointers the walk stops at the site.

At exit it prints the TOP (default 10) sites by bytes, each with its calls, bytes, failures
and a power-of-two histogram of the sizes; with -i MS also every interval, for that interval.
-p PID watches one process, not its children (in the kernel: other processes' malloc() calls
are not even probed). A filter on the entry keeps only some sizes; returns without their entry
are counted and left out:

    ebpfprof python -e 'uprobe:c:malloc/arg1>=4096/,uretprobe:c:malloc//stack/max-stack=3/' -p PID tools/malloc_sizes.py

Overhead: every malloc() of the watched processes takes two uprobe traps into the kernel and a
user stack walk: on this 2-CPU VM the tool added 2.6 us to each malloc() (a loop of
malloc(32)+free(), timed with and without it), so a program that allocates a lot slows down
several times. Watch one
process with -p; without it, every process that calls malloc() pays. Only malloc() is probed:
calloc(), realloc() and memory the allocator gets from the kernel are not counted. A site in a
program without symbols (stripped, or code generated at run time) shows as its address.
"""
import sys
import time
from collections import Counter, defaultdict

TOP = int(sys.argv[1]) if len(sys.argv) > 1 else 10


class Site:
    """One call site: what was allocated there."""

    def __init__(self):
        self.calls = 0
        self.bytes = 0
        self.failed = 0              # malloc() returned NULL
        self.sizes = Counter()       # power-of-two bucket -> calls

    def add(self, size, failed):
        self.calls += 1
        self.bytes += size
        self.failed += failed
        self.sizes[size.bit_length()] += 1      # bucket b holds 2**(b-1) .. 2**b - 1 (b=0: size 0)


pending = {}                         # tid -> size of the malloc() it is in
interval_sites = defaultdict(Site)   # "site <- caller <- caller" -> Site, this interval
total_sites = defaultdict(Site)      # the same for the whole run
unpaired = 0                         # returns whose entry was filtered out or lost
started = last = time.monotonic()


def __init__():
    global started, last
    started = last = time.monotonic()


def _name(frame):
    if frame["symbol"] == "Unknown":
        return f"0x{frame['addr']:x}"
    return f"{frame['symbol']}+0x{frame['offset']:x}"


def _callers(frames):
    """The callers' names, up to the first one that is not a function: without frame pointers
    the stack walk goes on through whatever the frame pointer register held."""
    names = []
    for frame in frames:
        if frame["symbol"] == "Unknown":
            break
        names.append(f" <- {_name(frame)}")
    return "".join(names)


def uprobe__malloc(event):
    pending[event._tid] = event.arg1         # arg1: size_t size


def uretprobe__malloc(event):
    global unpaired
    size = pending.pop(event._tid, None)
    if size is None:
        unpaired += 1
        return
    chain = event._callchain                 # read now: the process may be gone at exit
    if chain:
        site = f"{_name(chain[0])} ({chain[0]['dso']}){_callers(chain[1:3])}"
    else:                                    # --no-user-callchain: the return address only
        site = f"0x{event.__probe_ret_ip:x}"
    failed = event.retval == 0               # retval: the pointer, NULL if it failed
    interval_sites[site].add(size, failed)
    total_sites[site].add(size, failed)


def _bucket_range(b):
    low, high = (0, 0) if b == 0 else (1 << (b - 1), (1 << b) - 1)
    return f"{low:>10} -> {high:<10}"


def _table(sites, seconds, title):
    calls = sum(s.calls for s in sites.values())
    total = sum(s.bytes for s in sites.values())
    print(f"{title}: {calls:,} malloc() calls, {total:,} bytes, {calls / seconds:,.0f} calls/s, "
          f"{len(sites)} call site{'s' if len(sites) != 1 else ''}")
    for site, s in sorted(sites.items(), key=lambda kv: -kv[1].bytes)[:TOP]:
        print(f"\n{site}")
        print(f"  {s.calls:,} calls, {s.bytes:,} bytes, {s.bytes // s.calls:,} per call"
              + (f", {s.failed:,} failed" if s.failed else ""))
        most = max(s.sizes.values())
        print(f"  {'bytes':>24} : calls")
        for b in range(min(s.sizes), max(s.sizes) + 1):
            n = s.sizes.get(b, 0)
            print(f"  {_bucket_range(b)} : {n:<8} |{'*' * round(40 * n / most):<40}|")


def __interval__():
    global last
    now = time.monotonic()
    _table(interval_sites, now - last, time.strftime("%H:%M:%S"))
    print(flush=True)
    interval_sites.clear()
    last = now


def __exit__():
    _table(total_sites, time.monotonic() - started, "whole run")
    if unpaired:
        print(f"\n{unpaired:,} returns without their entry (filtered out, lost, or a call already "
              "running at the start) left out")
