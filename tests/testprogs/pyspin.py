"""A CPU-bound Python process with a known stack, for the profile tests of
tests/kernel/test_python_callchain.py (any CPython 3.11+).

    python pyspin.py SECONDS [wait]

It prints "ready PID", waits for a line on stdin, then for SECONDS spends its time in
leaf() called by mid() called by spin() called from the module, and exits; with "wait" it
first prints "done" and waits for another line (its code objects can still be read).
"""
import os
import sys
import time


def leaf(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


def mid(n):
    return leaf(n) + 1


def spin(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        mid(2000)


if __name__ == "__main__":
    print("ready", os.getpid(), flush=True)
    sys.stdin.readline()
    spin(float(sys.argv[1]))
    if sys.argv[2:] == ["wait"]:
        print("done", flush=True)
        sys.stdin.readline()
