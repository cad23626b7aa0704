"""Workload for bench/python_stack.py: N getppid() calls at Python stack depth DEPTH.

    PYTHON py_depth.py DEPTH N [RATE]

Prints "ready PID", waits for a line on stdin, then starts one thread whose stack is DEPTH
Python frames (DEPTH - 1 of rec() and loop(); 0: none at all) and makes the N calls there;
prints "done ELAPSED_NS", and waits for another line before exiting (so the tracer sees the
process to the end). ELAPSED_NS is timed in the main thread, from starting the thread to its
last call (perf_counter_ns): a constant ~0.1 ms of thread start that cancels out in the bench's
differences.

The calls are made by a C loop (deque(starmap(getppid, ...), 0)), so the loop adds no Python
frames and little time of its own, and depth 0 is the same loop with no Python frame under it:
the thread is started with _thread.start_new_thread on a C callable (threading's bootstrap would
add three Python frames). 3.12+ also put one shim frame under a thread's first Python frame.
With RATE (DEPTH >= 1), loop() makes the calls in batches of 100 paced at RATE calls a second instead.
"""
import _thread
import os
import sys
import time
from collections import deque
from itertools import chain, repeat, starmap

DEPTH, N = int(sys.argv[1]), int(sys.argv[2])
RATE = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
BATCH = 100

done = _thread.allocate_lock()
done.acquire()


def calls(n):
    """n getppid() calls, then done.release(), all in C."""
    return chain(starmap(os.getppid, repeat((), n)), starmap(done.release, ((),)))


def loop(n):
    if not RATE:
        deque(calls(n), 0)
        return
    start = time.perf_counter()
    made = 0
    while made < n:
        batch = min(BATCH, n - made)
        deque(starmap(os.getppid, repeat((), batch)), 0)
        made += batch
        wait = start + made / RATE - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
    done.release()


def rec(d, n):
    """d Python frames: d - 1 of rec(), then loop()."""
    if d > 2:
        return rec(d - 1, n)
    return loop(n)


print("ready", os.getpid(), flush=True)
sys.stdin.readline()
t0 = time.perf_counter_ns()
if DEPTH == 0:
    _thread.start_new_thread(deque, (calls(N), 0))
elif DEPTH == 1:
    _thread.start_new_thread(loop, (N,))
else:
    _thread.start_new_thread(rec, (DEPTH, N))
done.acquire()
print("done", time.perf_counter_ns() - t0, flush=True)
sys.stdin.readline()
