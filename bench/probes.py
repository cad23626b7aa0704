#!/usr/bin/env python3
"""ebpfprof benchmark: uprobes (issue #11, Speed), ratios within one run.

    make bench                 # or: .venv/bin/python bench/probes.py [--quick] [--no-write]

Workload: bench/caller (one thread calling an empty, never-inlined function for SECONDS,
counting its calls), for each of its three functions (f, f_push, f_nop5: a uprobe on each
costs the kernel two traps, one, none; see bench/caller.c). Its rate untraced; under
`ebpfprof python -v -e uprobe:CALLER:FUNC -p PID` with a counting handler
(bench/scripts/probe_count.py), whose consumer CPU per event is compared with the same handler
in a bare CPython loop measured inside the run (bench/scripts/paired.py), and whose delivered +
lost must equal the calls the workload made; and, where bpftrace is installed (Debian:
apt-get install bpftrace), under `bpftrace -e 'uprobe:CALLER:FUNC { @n = count(); }'`,
interleaved with ebpfprof's runs. A uprobe costs the kernel the same for both (the trap and
the BPF program's dispatch), so the gap between the two traced rates is ours.
Prints a table and writes its section of bench/RESULTS.md (unless --no-write or --quick).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "bench" / "scripts"
OUT = ROOT / "bench" / "out"
EBPFPROF = [sys.executable, "-m", "ebpfprof"]

from results import machine, write_section  # noqa: E402  (bench/ is sys.path[0])
from run import build_workload, idle_vcpus_poll, traced as traced_tracepoint  # noqa: E402

# -i for the paired windows: probe_count.py leaves out windows of fewer than 5,000 events; the
# slowest uprobe here (f: two traps) still makes ~40,000-100,000 events/s.
INTERVAL_MS = 200


def build_caller() -> Path:
    OUT.mkdir(exist_ok=True)
    src, exe = ROOT / "bench" / "caller.c", OUT / "caller"
    if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(exe), str(src)], check=True)
    return exe


class Caller:
    """bench/caller with its handshake: ready PID / go / done CALLS SECONDS RATE / exit."""

    def __init__(self, exe: Path, seconds: float, func: str = "f") -> None:
        self.proc = subprocess.Popen([str(exe), str(seconds), func], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.pid = int(self.proc.stdout.readline().split()[1])

    def go(self) -> tuple[int, float]:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        _done, calls, _secs, rate = self.proc.stdout.readline().split()
        return int(calls), float(rate)

    def finish(self) -> None:
        try:
            self.proc.stdin.write("x\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        self.proc.wait(timeout=60)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def schedstat_ns(pid: int) -> int:
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def untraced(exe: Path, seconds: float, func: str) -> float:
    rates = []
    for _ in range(3):
        c = Caller(exe, seconds, func)
        rates.append(c.go()[1])
        c.finish()
    return statistics.median(rates)


def stopping_counts(lines: list[str]) -> tuple[int, int]:
    """(delivered, lost) from -v's 'stopping: ...; N events delivered, M lost' line."""
    for line in lines:
        m = re.search(r"stopping:.*?(\d+) events delivered, (\d+) lost", line)
        if m:
            return int(m.group(1)), int(m.group(2))
    return -1, -1


def traced_ebpfprof(exe: Path, seconds: float, func: str) -> dict:
    c = Caller(exe, seconds, func)
    cmd = EBPFPROF + ["python", "-v", "-e", f"uprobe:{exe}:{func}", "-p", str(c.pid), "-i", str(INTERVAL_MS),
                      str(SCRIPTS / "probe_count.py"), func]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    attached = threading.Event()

    def read_err():
        for line in proc.stderr:
            lines.append(line)
            if "attached" in line:
                attached.set()
        attached.set()

    t = threading.Thread(target=read_err, daemon=True)
    t.start()
    if not attached.wait(60) or proc.poll() is not None:
        c.kill()
        proc.kill()
        raise RuntimeError("ebpfprof did not attach:\n" + "".join(lines))
    cpu0 = schedstat_ns(proc.pid)
    calls, rate = c.go()
    c.finish()
    out = proc.stdout.read()          # stderr belongs to read_err
    proc.wait(timeout=120)
    t.join(5)
    if "BENCH " not in out:
        raise RuntimeError("no BENCH line from the uprobe run:\n" + "".join(lines))
    result = json.loads(out.split("BENCH ", 1)[1].splitlines()[0])
    if result["loop_ns"] is None:
        raise RuntimeError(f"uprobe run: no paired window ({result['windows']} windows, "
                           f"{result['events']:,} events); its stderr:\n" + "".join(lines[-40:]))
    delivered, lost = stopping_counts(lines)
    result.update(calls=calls, rate=rate, delivered=delivered, lost=lost,
                  ns_per_event=(result["cpu_ns"] - cpu0) / max(1, result["events"]))
    return result


def traced_bpftrace(exe: Path, seconds: float, func: str) -> dict:
    """The same workload under bpftrace's counting uprobe; its count and the workload's rate."""
    c = Caller(exe, seconds, func)
    # BEGIN fires once every probe is attached: its line is the "attached" marker.
    prog = f'BEGIN {{ printf("attached\\n"); }} uprobe:{exe}:{func} {{ @n = count(); }}'
    proc = subprocess.Popen(["bpftrace", "-p", str(c.pid), "-e", prog], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    attached = threading.Event()

    def read_out():
        for line in proc.stdout:
            lines.append(line)
            if line.strip() == "attached":
                attached.set()
        attached.set()

    t = threading.Thread(target=read_out, daemon=True)
    t.start()
    if not attached.wait(60) or proc.poll() is not None:
        c.kill()
        proc.kill()
        return {"error": "bpftrace did not attach: " + (proc.stderr.read().strip()[-300:] if proc.poll() is not None
                                                       else "no BEGIN line")}
    calls, rate = c.go()
    c.finish()                        # bpftrace -p exits when the process does
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.send_signal(2)
        proc.wait(timeout=60)
    t.join(5)
    m = re.search(r"^@n: (\d+)$", "".join(lines), re.M)
    return {"calls": calls, "rate": rate, "counted": int(m.group(1)) if m else -1}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter runs (a smoke check, not for RESULTS.md)")
    ap.add_argument("--no-write", action="store_true", help="do not write bench/RESULTS.md")
    ap.add_argument("--no-poll-idle", action="store_true",
                    help="let idle vCPUs halt (see run.py's idle_vcpus_poll): noisier per-event figures")
    opts = ap.parse_args()
    with idle_vcpus_poll(not opts.no_poll_idle) as note:
        print(note)
        return run(opts, note)


# (function, what a hit costs the kernel, seconds a run): see bench/caller.c.
VARIANTS = [
    ("f", "a lone `ret`: int3, then the instruction single-stepped out of line (two traps)", 2.0),
    ("f_push", "`push %rbp` first: int3, the push emulated (one trap)", 1.0),
    ("f_nop5", "a 5-byte nop first: the kernel rewrites it into a call to its [uprobes-trampoline] (no trap)", 1.0),
]


def run(opts, idle_note: str) -> int:
    pairs = 2 if opts.quick else 3
    exe = build_caller()
    rows: list[tuple[str, str, str, str]] = []

    def add(name, value, target="", ok=None):
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        rows.append((name, value, target, verdict))
        print(f"{name:<76} {value:>22} {target:>8} {verdict}", flush=True)

    bpftrace = shutil.which("bpftrace")
    if not bpftrace:
        add("bpftrace (the reference)", "not measured: bpftrace not installed (apt-get install bpftrace)")
    for func, how, seconds in VARIANTS:
        seconds = min(seconds, 1.0) if opts.quick else seconds
        base = untraced(exe, 0.3, func)
        add(f"**uprobe:{func}** ({how}): workload untraced (calls/s, median of 3)", f"{base:,.0f}")
        ours, theirs = [], []
        for _ in range(pairs):           # interleaved: the VM's speed drifts by more than the gaps
            ours.append(traced_ebpfprof(exe, seconds, func))
            if bpftrace:
                theirs.append(traced_bpftrace(exe, seconds, func))
        r = sorted(ours, key=lambda x: x["ratio"])[len(ours) // 2]      # the run with the median ratio
        add(f"  {func}: counting handler, consumer CPU (us/event) / same handler in a bare CPython loop (us/call)",
            f"{r['ns_per_event'] / 1000:.3f} / {r['loop_ns'] / 1000:.3f}")
        add(f"  {func}: consumer CPU / bare CPython loop ({r['windows']} windows; the {pairs} runs)",
            f"{r['ratio']:.2f}x (" + " ".join(f"{x['ratio']:.2f}" for x in ours) + ")")
        exact = all(x["delivered"] + x["lost"] == x["calls"] and x["events"] == x["delivered"] for x in ours)
        add(f"  {func}: delivered + lost = calls made while traced (every run)",
            "; ".join(f"{x['delivered']:,}+{x['lost']:,}={x['calls']:,}" for x in ours), "equal", exact)
        add(f"  {func}: events lost (default -m), worst of {pairs} runs", f"{max(x['lost'] for x in ours):,}", "0",
            all(x["lost"] == 0 for x in ours))
        our_rate = statistics.median(x["rate"] for x in ours)
        add(f"  {func}: traced by ebpfprof (calls/s, median of {pairs}; us a traced call)",
            f"{our_rate:,.0f}; {1e6 / our_rate - 1e6 / base:.2f}")
        if not bpftrace:
            continue
        if any("error" in x for x in theirs):
            add(f"  {func}: under bpftrace", "not measured: " + next(x["error"] for x in theirs if "error" in x))
            continue
        their_rate = statistics.median(x["rate"] for x in theirs)
        add(f"  {func}: under bpftrace {{ @n = count(); }} (calls/s, median of {pairs}; us a traced call)",
            f"{their_rate:,.0f}; {1e6 / their_rate - 1e6 / base:.2f}")
        add(f"  {func}: traced rate ebpfprof / bpftrace (per run, in order: ebpfprof; bpftrace, k calls/s)",
            f"{our_rate / their_rate:.0%} (" + " ".join(f"{x['rate'] / 1000:.0f}" for x in ours) + "; "
            + " ".join(f"{x['rate'] / 1000:.0f}" for x in theirs) + ")")
        add(f"  {func}: ebpfprof's extra time a traced call, over bpftrace's (us)",
            f"{1e6 / our_rate - 1e6 / their_rate:.2f}")
        add(f"  {func}: bpftrace's @n = calls made (every run)",
            "; ".join(f"{x['counted']:,}={x['calls']:,}" for x in theirs), "equal",
            all(x["counted"] == x["calls"] for x in theirs))
        if func == "f":
            # The control: a tracepoint paced at f's traced rate, same handler, same pairing. At so
            # low a rate the consumer's per-drain costs weigh on every event, uprobe or not.
            pace = int(our_rate) // 1000 * 1000
            tp_interval = max(INTERVAL_MS, 25_000_000 // max(1, pace))   # count.py wants 20,000 a window
            tp = traced_tracepoint(build_workload(), "count.py", ["rate", str(int(pace * seconds)), str(pace)],
                                   ["-i", str(tp_interval)])
            add(f"  control: getppid tracepoint paced at {pace:,}/s, same handler: us/event; / bare loop",
                f"{tp['ns_per_event'] / 1000:.3f}; {tp['ratio']:.2f}x" if tp.get("ratio") else "no paired window")

    if not opts.no_write and not opts.quick:
        write_results(rows, pairs, idle_note, bool(bpftrace))
    return 0 if all(v != "FAIL" for *_, v in rows) else 1


def write_results(rows, pairs: int, idle_note: str, with_bpftrace: bool) -> None:
    version = ""
    if with_bpftrace:
        version = subprocess.run(["bpftrace", "--version"], capture_output=True, text=True).stdout.strip()
    text = [f"## Uprobes (`bench/probes.py`, {time.strftime('%Y-%m-%d %H:%M %Z')})", "",
            f"Command: `.venv/bin/python bench/probes.py`. Machine: {machine()}; {idle_note}.",
            "Workload: `bench/caller SECONDS FUNC` (one thread calling an empty, never-inlined function for "
            "SECONDS, counting its calls; three functions that differ in the first instruction, the one the "
            "uprobe replaces), traced with `ebpfprof python -v -e uprobe:bench/out/caller:FUNC -p PID "
            f"-i {INTERVAL_MS} bench/scripts/probe_count.py FUNC` (a counting handler; the bare loop paired "
            f"with the live windows as in `bench/scripts/paired.py`; {pairs} runs, the one with the median ratio)"
            + (f", interleaved with `bpftrace -p PID -e 'uprobe:bench/out/caller:FUNC {{ @n = count(); }}'` "
               f"({version})" if with_bpftrace else "") + ". "
            "Time a traced call = 1/traced rate - 1/untraced rate: what a uprobe hit costs the workload's "
            "thread. Both tools pay the same trap; ebpfprof's program also writes a 96-byte record to the "
            "ring where bpftrace's count() adds 1 to a per-CPU map, so the gap is ours: the price of "
            "delivering every event.",
            "Targets (issue #11, Speed): figures, no numbers; the exact accounting (delivered + lost = calls) "
            "and 0 lost are checked.", "",
            "| figure | value | target | |", "|---|---:|---:|---|"]
    text += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    write_section("## Uprobes", "\n".join(text) + "\n")
    print("\nwrote its section of bench/RESULTS.md")


if __name__ == "__main__":
    sys.exit(main())
