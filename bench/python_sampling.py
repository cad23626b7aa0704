#!/usr/bin/env python3
"""ebpfprof benchmark: a sampling Python profiler against py-spy (issue #12, Speed), same run.

    make bench                 # or: .venv/bin/python bench/python_sampling.py [--quick] [--no-write]

Workload: bench/scripts/py_cpu.py ROUNDS (fixed pure-Python work, timed by itself), on Debian's
/usr/bin/python3.11, run (a) alone, (b) under `ebpfprof python -e 'profile/-F 99/'
--python-callchain -p PID tools/python_flamegraph.py` (every sample's Python stack read in the
kernel and named by the tool), (c) under `py-spy record --rate 99 --format raw -p PID`
(py-spy's own sampling from outside, by process_vm_readv, with its native unwinding off),
interleaved, REPEATS times. Reported: each profiler's slowdown of the program (its elapsed time
over the untraced median), the samples each took, and the samples with Python frames.
Prints a table and writes its section of bench/RESULTS.md (unless --no-write or --quick).
"""
from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = "/usr/bin/python3.11"
EBPFPROF = [sys.executable, "-m", "ebpfprof"]
PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))

from results import machine, write_section  # noqa: E402  (bench/ is sys.path[0])


class Workload:
    def __init__(self, rounds: int) -> None:
        self.proc = subprocess.Popen([PYTHON, str(ROOT / "bench" / "scripts" / "py_cpu.py"), str(rounds)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.pid = int(self.proc.stdout.readline().split()[1])

    def run(self) -> int:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        elapsed = int(self.proc.stdout.readline().split()[1])
        return elapsed

    def end(self) -> None:
        try:
            self.proc.stdin.write("exit\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        self.proc.wait(timeout=30)


def untraced(rounds: int) -> tuple[int, int, int]:
    wl = Workload(rounds)
    try:
        return wl.run(), 0, 0
    finally:
        wl.end()


def under_ebpfprof(rounds: int, out: Path) -> tuple[int, int, int]:
    wl = Workload(rounds)
    tracer = subprocess.Popen([*EBPFPROF, "python", "-v", "-e", "profile/-F 99/", "--python-callchain",
                               "-p", str(wl.pid), str(ROOT / "tools" / "python_flamegraph.py"), str(out)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while "attached" not in tracer.stderr.readline():
            if tracer.poll() is not None:
                raise SystemExit("ebpfprof exited before it attached: " + tracer.stderr.read())
        elapsed = wl.run()
        time.sleep(0.3)                  # its last samples are read while the process lives
        wl.end()
        _, err = tracer.communicate(timeout=60)
    finally:
        if tracer.poll() is None:
            tracer.kill()
    samples = int(re.search(r"(\d+) events delivered", err).group(1))
    stacks = [line.rsplit(" ", 1) for line in out.read_text().splitlines()]
    python = sum(int(n) for stack, n in stacks if "[native]" not in stack and "[unknown]" not in stack)
    return elapsed, samples, python


def under_py_spy(rounds: int, out: Path) -> tuple[int, int, int]:
    wl = Workload(rounds)
    spy = subprocess.Popen([PY_SPY, "record", "--rate", "99", "--format", "raw", "--nonblocking",
                            "-o", str(out), "-p", str(wl.pid)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)                  # py-spy attaches and starts sampling
        elapsed = wl.run()
        spy.send_signal(2)
        spy.communicate(timeout=60)
    finally:
        if spy.poll() is None:
            spy.kill()
        wl.end()
    stacks = [line.rsplit(" ", 1) for line in out.read_text().splitlines() if line.strip()]
    samples = sum(int(n) for _, n in stacks)
    return elapsed, samples, samples


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller runs (a smoke check, not for RESULTS.md)")
    ap.add_argument("--no-write", action="store_true", help="do not write bench/RESULTS.md")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if not Path(PY_SPY).exists():
        print(f"py-spy not found ({PY_SPY}): pip install py-spy; not measured")
        return 0
    rounds = 2000 if args.quick else 20000          # about 0.3 s and 3 s untraced here
    repeats = 1 if args.quick else args.repeats
    rows: dict[str, list[tuple[int, int, int]]] = {"untraced": [], "ebpfprof": [], "py-spy": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            rows["untraced"].append(untraced(rounds))
            rows["ebpfprof"].append(under_ebpfprof(rounds, Path(tmp) / f"e{r}.folded"))
            rows["py-spy"].append(under_py_spy(rounds, Path(tmp) / f"s{r}.txt"))
            print(f"  round {r + 1}/{repeats} done", file=sys.stderr)
    base = statistics.median(e for e, _, _ in rows["untraced"])
    lines = [f"## Sampling Python profiler vs py-spy ({time.strftime('%Y-%m-%d')})", "",
             f"Machine: {machine()}. Workload: bench/scripts/py_cpu.py {rounds} on {PYTHON}, "
             f"{repeats} interleaved runs of each; bench/python_sampling.py.", "",
             "| run | elapsed (median, ms) | slowdown | samples (median) | with Python frames |",
             "|---|---:|---:|---:|---:|"]
    for name, label in (("untraced", "untraced"),
                        ("ebpfprof", "`ebpfprof -e 'profile/-F 99/' --python-callchain` + python_flamegraph.py"),
                        ("py-spy", "`py-spy record --rate 99 --format raw`")):
        el = statistics.median(e for e, _, _ in rows[name])
        smp = statistics.median(s for _, s, _ in rows[name])
        py = statistics.median(p for _, _, p in rows[name])
        lines.append(f"| {label} | {el / 1e6:,.0f} | {el / base:.3f}x | {smp:,.0f} | {py:,.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not (args.quick or args.no_write):
        write_section("## Sampling Python profiler vs py-spy", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
