"""CPU-bound Python work of a fixed size, timed by itself, for bench/python_sampling.py.

    python py_cpu.py ROUNDS

Prints "ready PID", waits for a line on stdin, runs ROUNDS rounds of pure-Python work (nested
calls, a dict, string formatting: what a profiler samples), prints "done ELAPSED_NS", and waits
for another line before it exits (so that a profiler can still read its memory).
"""
import os
import sys
import time


def leaf(i):
    return (i * 7) % 13


def middle(n):
    table = {}
    for i in range(n):
        table[i & 255] = leaf(i)
    return f"{len(table)}:{sum(table.values())}"


def work(rounds):
    out = 0
    for _ in range(rounds):
        out += len(middle(2000))
    return out


print("ready", os.getpid(), flush=True)
sys.stdin.readline()
t0 = time.perf_counter_ns()
work(int(sys.argv[1]))
print("done", time.perf_counter_ns() - t0, flush=True)
sys.stdin.readline()
