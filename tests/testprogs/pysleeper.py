"""A Python process that makes clock_nanosleep system calls from known Python stacks, for
tests/kernel/test_python_callchain.py (any CPython 3.11+).

    python pysleeper.py OUT.json DEPTH

It prints "ready PID" and waits for a line on stdin. Then the main thread calls ``tick()``
(which sleeps 100 us: one clock_nanosleep) from a method, a generator, a ``sorted(key=...)``
callback (C calling back into Python), a closure, and a recursion DEPTH deep; three threads
call it from their own functions, the GIL released in each sleep. Each call records its stack
first, innermost first, as [qualname, filename, line] with tick's line being the sleep's.
Then it writes OUT.json, {"pid": ..., "calls": {"<native tid>": [stack, ...]}}, prints "done"
and waits for another line before it exits.
"""
import json
import os
import sys
import threading
import time

OUT, DEPTH = sys.argv[1], int(sys.argv[2])
calls: dict[int, list] = {}
lock = threading.Lock()


def tick():
    f = sys._getframe(); here = f.f_lineno
    time.sleep(0.0001)                      # the event: on the line after `here`
    stack, line = [], here + 1
    while f is not None:
        stack.append([f.f_code.co_qualname, f.f_code.co_filename, line])
        f = f.f_back
        line = f.f_lineno if f is not None else 0
    with lock:
        calls.setdefault(threading.get_native_id(), []).append(stack)


class Walker:
    def run(self):
        for _ in self.steps():
            pass
        sorted([3, 1, 2], key=self.key)

    def steps(self):
        for _ in range(2):
            tick()
            yield

    def key(self, x):
        tick()
        return x


def outer():
    def inner():
        tick()
    inner()


def deep(n):
    if n == 0:
        tick()
        return
    deep(n - 1)


def worker(k):
    for _ in range(3):
        tick()


def main():
    print("ready", os.getpid(), flush=True)
    sys.stdin.readline()
    Walker().run()
    outer()
    deep(DEPTH)
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open(OUT, "w") as f:
        json.dump({"pid": os.getpid(), "calls": {str(t): s for t, s in calls.items()}}, f)
    print("done", flush=True)
    sys.stdin.readline()


main()
