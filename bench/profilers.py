#!/usr/bin/env python3
"""ebpfprof benchmark: the profiler sources (issue #10), ratios within one run.

    make bench                 # or: .venv/bin/python bench/profilers.py [--quick]

- page-faults on bench/faulter (one thread faulting as fast as it can): consumer CPU per sample
  against the same handler in a bare CPython loop (measured in the run, bench/scripts/paired.py),
  samples lost with the default -m, and the workload's rate untraced, traced by ebpfprof, and
  under `perf record -e page-faults -c 1` (the reference tool, same workload, same run).
- profile -F 997 -g on both CPUs, both busy: consumer CPU per second of profiling, counting
  only and with every sample's callchain symbolized.
Prints a table and appends it to bench/RESULTS.md (unless --no-write).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "bench" / "scripts"
OUT = ROOT / "bench" / "out"
EBPFPROF = [sys.executable, "-m", "ebpfprof"]


def build_faulter() -> Path:
    OUT.mkdir(exist_ok=True)
    src, exe = ROOT / "bench" / "faulter.c", OUT / "faulter"
    if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(exe), str(src)], check=True)
    return exe


class Faulter:
    def __init__(self, exe: Path, rounds: int, pages: int) -> None:
        self.proc = subprocess.Popen([str(exe), str(rounds), str(pages)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.pid = int(self.proc.stdout.readline().split()[1])

    def go(self) -> tuple[int, float]:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        _done, faults, _secs, rate = self.proc.stdout.readline().split()
        return int(faults), float(rate)

    def finish(self) -> None:
        try:
            self.proc.stdin.write("x\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        self.proc.wait(timeout=60)


def schedstat_ns(pid: int) -> int:
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def attached_run(cmd: list[str], marker: str = "attached"):
    """Start cmd, wait for the marker line on stderr; (proc, lines, reader thread)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    seen = threading.Event()

    def read_err():
        for line in proc.stderr:
            lines.append(line)
            if marker in line:
                seen.set()
        seen.set()

    t = threading.Thread(target=read_err, daemon=True)
    t.start()
    if not seen.wait(60) or proc.poll() is not None:
        proc.kill()
        raise RuntimeError("did not start:\n" + "".join(lines))
    return proc, lines, t


def lost_of(lines: list[str]) -> int:
    for line in lines:
        if "stopping:" in line and " lost" in line:
            return int(line.rsplit(",", 1)[1].split()[0])
    return -1


def untraced(exe: Path, rounds: int, pages: int) -> float:
    f = Faulter(exe, rounds, pages)
    _, rate = f.go()
    f.finish()
    return rate


def traced_faults(exe: Path, rounds: int, pages: int) -> dict:
    f = Faulter(exe, rounds, pages)
    proc, lines, t = attached_run(EBPFPROF + ["python", "-v", "-e", "page-faults", "-p", str(f.pid),
                                              "-i", "100", str(SCRIPTS / "faults_count.py")])
    cpu0 = schedstat_ns(proc.pid)
    faults, rate = f.go()
    f.finish()
    out = proc.stdout.read()
    proc.wait(timeout=300)
    t.join(5)
    result = json.loads(out.split("BENCH ", 1)[1].splitlines()[0])
    result.update(faults=faults, rate=rate, lost=lost_of(lines),
                  ns_per_event=(result["cpu_ns"] - cpu0) / max(1, result["events"]))
    return result


def perf_record_rate(exe: Path, rounds: int, pages: int) -> float | None:
    f = Faulter(exe, rounds, pages)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            proc = subprocess.Popen(["perf", "record", "-q", "-e", "page-faults", "-c", "1", "-p", str(f.pid),
                                     "-o", f"{tmp}/perf.data"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        except FileNotFoundError:
            f.proc.kill()
            return None
        time.sleep(1.0)          # perf record has no "attached" line: give it time to start
        _, rate = f.go()
        f.finish()
        proc.wait(timeout=120)
    return rate


def profile_cost(seconds: float, script: str) -> dict:
    """profile -F 997 -g on every CPU with both CPUs busy; the consumer's CPU per second."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        proc, lines, t = attached_run(EBPFPROF + ["python", "-v", "-e", "profile/-F 997 -g/",
                                                  str(SCRIPTS / script)])
        cpu0 = schedstat_ns(proc.pid)
        time.sleep(seconds)
        proc.send_signal(2)
        out = proc.stdout.read()
        proc.wait(timeout=120)
        t.join(5)
    finally:
        for s in spinners:
            s.kill()
    result = json.loads(out.split("BENCH ", 1)[1].splitlines()[0])
    result.update(cpu_per_s=(result["cpu_ns"] - cpu0) / seconds, lost=lost_of(lines),
                  ns_per_event=(result["cpu_ns"] - cpu0) / max(1, result["events"]))
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    opts = ap.parse_args()
    rounds, pages = (20, 16384) if opts.quick else (100, 16384)      # 64 MiB a round
    exe = build_faulter()
    rows: list[tuple[str, str, str, str]] = []

    def add(name, value, target="", ok=None):
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        rows.append((name, value, target, verdict))
        print(f"{name:<66} {value:>18} {target:>10} {verdict}")

    base = untraced(exe, rounds, pages)
    add("page-faults workload untraced (faults/s)", f"{base:,.0f}")
    runs = [traced_faults(exe, rounds, pages) for _ in range(3)]
    r = sorted(runs, key=lambda x: x["ratio"] or 0)[1]
    add("page-faults: consumer CPU (us/sample)", f"{r['ns_per_event'] / 1000:.3f}")
    add("  same handler in a bare CPython loop, same run (us/call)", f"{r['loop_ns'] / 1000:.3f}")
    add(f"page-faults: consumer CPU / bare CPython loop ({r['windows']} windows)", f"{r['ratio']:.2f}x",
        "<= 1.50x", r["ratio"] <= 1.5)
    add(f"page-faults: samples delivered (the workload made {r['faults']:,} in its loop)",
        f"{r['events']:,}", f">= {r['faults']:,}", r["events"] >= r["faults"])
    add("page-faults: samples lost (default -m)", f"{r['lost']:,}", "0", r["lost"] == 0)
    add("page-faults workload traced by ebpfprof (faults/s, % of untraced)",
        f"{r['rate']:,.0f} ({r['rate'] / base:.0%})")
    perf = perf_record_rate(exe, rounds, pages)
    if perf is not None:
        add("  same workload under perf record -e page-faults -c 1 (faults/s, %)", f"{perf:,.0f} ({perf / base:.0%})")

    seconds = 3 if opts.quick else 10
    count = profile_cost(seconds, "profile_count.py")
    add("profile -F 997 -g, 2 busy CPUs: samples/s", f"{count['events'] / seconds:,.0f}")
    add("profile -F 997 -g: consumer CPU per second, counting (ms/s)", f"{count['cpu_per_s'] / 1e6:.1f}")
    syms = profile_cost(seconds, "profile_symbols.py")
    add("profile -F 997 -g: consumer CPU per sample, callchain symbolized (us)",
        f"{syms['ns_per_event'] / 1000:.1f}")
    add("profile -F 997 -g: consumer CPU per second, callchain symbolized (ms/s)",
        f"{syms['cpu_per_s'] / 1e6:.1f}")
    add("profile: samples lost", f"{count['lost'] + syms['lost']}", "0", count["lost"] + syms["lost"] == 0)

    if not opts.no_write and not opts.quick:
        text = ["", f"## Profiler sources (`bench/profilers.py`, {time.strftime('%Y-%m-%d %H:%M %Z')})", "",
                f"Workload: `bench/faulter {rounds} {pages}` (one thread: map 64 MiB, touch each page, "
                "unmap; repeat), traced with `-e page-faults -p PID`; profile with two busy Python loops.", "",
                "| figure | value | target | |", "|---|---|---|---|"]
        text += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
        with open(ROOT / "bench" / "RESULTS.md", "a") as f:
            f.write("\n".join(text) + "\n")
        print("\nappended to bench/RESULTS.md")
    return 0 if all(v != "FAIL" for *_, v in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
