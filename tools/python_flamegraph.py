#!/usr/bin/env -S ebpfprof python -e 'profile/-F 99/' --python-callchain
"""A Python CPU profile as folded stacks (flamegraph.pl, speedscope), sampled in the kernel.

    ebpfprof python -e 'profile/-F 99/' --python-callchain tools/python_flamegraph.py [OUT]

`profile` samples the process at 99 Hz; --python-callchain reads the sampled thread's Python
stack in the kernel at each sample, so every sample says which Python function (and line)
was running, whether or not the interpreter was built with frame pointers. Each distinct
stack of Python functions becomes one line

    COMM;<module> (app.py);main (app.py);work (app.py) COUNT

outermost first. Samples with no Python frame (the thread was in native code outside the
interpreter, or in a process that is not CPython 3.11-3.13) are counted as `[native]`. With
-p every thread of PID is sampled; without it, every CPU (Python processes running at the
start get their frames). With OUT the stacks go to that file at exit (and with -i MS every
interval), replaced whole; without OUT they are printed at exit.

    ebpfprof python -e 'profile/-F 99/' --python-callchain -p PID tools/python_flamegraph.py out.folded
    flamegraph.pl out.folded > out.svg          # or open out.folded in speedscope.app

Add -g for the native frames too: tools/flamegraph.py with --python-callchain.
"""
import os
import sys
from collections import Counter

OUT = sys.argv[1] if len(sys.argv) > 1 else None

stacks = Counter()           # "comm;frame;...;frame" -> samples
comms = {}                   # tid -> comm


def _comm(tid):
    if tid not in comms:
        try:
            with open(f"/proc/{tid}/comm") as f:
                comm = f.read().rstrip("\n")
        except OSError:
            comm = "[exited]"
        comms[tid] = comm.replace(";", "_").replace(" ", "_")
    return comms[tid]


def profile(event):
    if event._pid == 0:
        return                                   # the idle task
    frames = [f"{f['symbol']} ({os.path.basename(f['dso'])})" for f in reversed(event._callchain)
              if f.get("python")]
    stacks[";".join([_comm(event._tid), *(frames or ["[native]"])])] += 1


def _folded():
    return "".join(f"{stack} {n}\n" for stack, n in sorted(stacks.items()))


def _write():
    tmp = OUT + ".tmp"
    with open(tmp, "w") as f:
        f.write(_folded())
    os.replace(tmp, OUT)
    print(f"{OUT}: {len(stacks)} stacks, {sum(stacks.values())} samples", flush=True)


def __interval__():
    if OUT:
        _write()


def __exit__():
    if OUT:
        _write()
    else:
        sys.stdout.write(_folded())
