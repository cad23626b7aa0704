"""Counting handler for bench/python_stack.py's getppid events of bench/scripts/py_depth.py.

    ebpfprof python -e syscalls:sys_enter_getppid -p PID [--python-callchain] py_count.py [read]

Counts the events; reads event._callchain of the first one only (how many Python frames it
has: the check that the stack was the workload's), or with `read` of every one (the consumer's
cost of naming the Python frames; the last one's are checked at exit too). At exit prints
"BENCH {json}": events, the Python frames of the first (and last) event and how many of them
were named, and this process's on-CPU time (/proc/self/schedstat: the dispatch loop's thread).
"""
import json
import sys

READ = len(sys.argv) > 1 and sys.argv[1] == "read"
n = 0
first = last = None


def count(event):
    global n, first
    if n == 0:
        first = event._callchain
    n += 1


def count_and_read(event):
    global n, first, last
    last = event._callchain
    if n == 0:
        first = last
    n += 1


syscalls__sys_enter_getppid = count_and_read if READ else count


def python_frames(chain):
    """(Python frames, of them named) of one callchain."""
    if chain is None:
        return None
    frames = [f for f in chain if f.get("python")]
    return [len(frames), sum(1 for f in frames if f["symbol"] != "[unknown]")]


def __exit__():
    with open("/proc/self/schedstat") as f:
        cpu_ns = int(f.read().split()[0])
    print("BENCH " + json.dumps({"events": n, "python_frames": python_frames(first),
                                 "last_python_frames": python_frames(last), "cpu_ns": cpu_ns}), flush=True)
