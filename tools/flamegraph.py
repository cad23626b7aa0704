#!/usr/bin/env -S ebpfprof python -e profile -g
"""CPU profile as folded stacks, the input of flamegraph.pl and speedscope.

    ebpfprof python -e profile -g tools/flamegraph.py [OUT]

`profile` samples every CPU at 997 Hz (cpu-clock where there is no PMU); -g gives each sample
its callchain. Each distinct stack becomes one line

    COMM;outermost;...;innermost COUNT

with kernel functions marked `_[k]`, as stackcollapse-perf.pl --kernel writes them. Samples of
the idle task (pid 0) are left out. With OUT the stacks go to that file (replaced whole, so a
viewer never reads half a file) at exit, and with -i MS also every interval, the whole run so
far each time; a line on stdout says what was written. Without OUT they are printed at exit.

    ebpfprof python -e profile -g -p PID tools/flamegraph.py out.folded
    flamegraph.pl out.folded > out.svg          # or open out.folded in speedscope.app

-F HZ in the selector changes the rate (-e 'profile/-F 99/' -g). User stacks need frame
pointers: code built without them shows its innermost user frame only.
"""
import os
import sys
from collections import Counter

OUT = sys.argv[1] if len(sys.argv) > 1 else None

stacks = Counter()           # "comm;frame;...;frame" -> samples
comms = {}                   # tid -> comm, read once per thread


def _comm(tid):
    comm = comms.get(tid)
    if comm is None:
        try:
            with open(f"/proc/{tid}/comm") as f:
                comm = f.read().rstrip("\n")
        except OSError:
            comm = "[exited]"
        comms[tid] = comm.replace(";", "_").replace(" ", "_")
    return comms[tid]


def _frame(f):
    name = f["symbol"]
    if name == "Unknown":
        dso = f["dso"]
        name = dso if dso.startswith("[") else f"[{os.path.basename(dso)}]"
    return name + "_[k]" if f["kernel"] else name


def profile(event):
    if event._pid == 0:
        return                                   # the idle task: not a cost
    frames = [_frame(f) for f in reversed(event.callchain)]
    stacks[";".join([_comm(event._tid), *frames])] += 1


def _folded():
    return "".join(f"{stack} {n}\n" for stack, n in sorted(stacks.items()))


def _write():
    tmp = f"{OUT}.tmp{os.getpid()}"
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
