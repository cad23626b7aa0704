"""A Python process with known stacks for tests/kernel/test_pystack_live.py (any CPython 3.11+).

    python pystack_workload.py OUT.json

The main thread goes through a method, a generator, a ``sorted(key=...)`` callback (C calling
back into Python), recursion, a closure and a lambda; three more threads go through their own
functions. Every thread then records its stack and blocks in ``os.read`` on a pipe nobody
writes (the GIL released). When all four have recorded, OUT.json is written:

    {"pid": ..., "threads": {"<native tid>": [[qualname, filename, line], ...]}}

stacks innermost first, the innermost frame being ``checkpoint`` at its ``os.read`` line. The
test kills the process when it is done.
"""
import json
import os
import sys
import threading

OUT = sys.argv[1]
_stacks: dict[int, list] = {}
_lock = threading.Lock()
_all_recorded = threading.Barrier(4, action=lambda: _write())
_BLOCK_LINE = next(i for i, text in enumerate(open(__file__), 1) if text.rstrip().endswith("# BLOCK"))


def _write():
    with open(OUT + ".tmp", "w") as f:
        json.dump({"pid": os.getpid(), "version": sys.version.split()[0],
                   "threads": {str(t): s for t, s in _stacks.items()}}, f)
    os.rename(OUT + ".tmp", OUT)


def checkpoint():
    """Record this thread's stack as the traceback module sees it, then block for good."""
    import traceback
    caller = sys._getframe(1)
    summary = traceback.extract_stack(caller)[::-1]           # innermost first
    frames, f = [], caller
    for entry in summary:                                       # the same frames, for co_qualname
        assert f.f_code.co_name == entry.name and f.f_code.co_filename == entry.filename
        frames.append([f.f_code.co_qualname, entry.filename, entry.lineno])
        f = f.f_back
    stack = [["checkpoint", __file__, _BLOCK_LINE]] + frames
    r, _w = os.pipe()
    with _lock:
        _stacks[threading.get_native_id()] = stack
    _all_recorded.wait()
    os.read(r, 1)  # BLOCK


def recurse(n):
    if n:
        return recurse(n - 1)

    def inner():
        return (lambda: checkpoint())()
    return inner()


class Walker:
    def __init__(self, items):
        self.items = items

    def key(self, item):
        if item == 2:
            recurse(3)
        return -item

    def numbers(self):
        for i in range(2):
            yield sorted(self.items,
                         key=self.key)

    def run(self):
        for ordered in self.numbers():
            return ordered


def thread_level_2(i):
    if i:
        return thread_level_2(i - 1)
    checkpoint()


def thread_main(i):
    thread_level_2(i)


def main():
    for i in range(3):
        threading.Thread(target=thread_main, args=(i,), name=f"worker-{i}", daemon=True).start()
    Walker([3, 1, 2]).run()


main()
