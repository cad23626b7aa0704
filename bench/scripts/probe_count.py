"""Counting handler on uprobe:...:FUNC events of bench/caller (run with -i: see paired.py).

    ebpfprof python -e uprobe:bench/out/caller:FUNC -p PID -i 200 probe_count.py [FUNC]

FUNC (default f) is f, f_push or f_nop5: one handler, under each of their handler names.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paired import Pairing, prebuilt_uprobe  # noqa: E402

FUNC = sys.argv[1] if len(sys.argv) > 1 else "f"
n = 0


def count(event):
    global n
    n += 1


uprobe__f = uprobe__f_push = uprobe__f_nop5 = count

# A window of fewer than 5,000 events (the workload starting or ending in it) is left out: at
# this VM's slowest uprobe (f, two traps a call) the run sees ~40,000-100,000 events/s.
pairing = Pairing(count, lambda: n, lambda: prebuilt_uprobe(FUNC), min_window_events=5000)
__interval__ = pairing.interval


def __exit__():
    pairing.report()
