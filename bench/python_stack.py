#!/usr/bin/env python3
"""ebpfprof benchmark: --python-callchain's cost per event (issue #12, Speed), ratios within one run.

    make bench                 # or: .venv/bin/python bench/python_stack.py [--quick] [--no-write]
                               #     [--python /usr/bin/python3.11] [--no-pyenv]

Workload: bench/scripts/py_depth.py DEPTH N (N getppid() calls from a C loop in a thread whose
stack is DEPTH Python frames), for DEPTH 0 (no Python frame: the thread state is found, no
frame read), 5, 20, 50, timed by itself (a) untraced, (b) under `ebpfprof python -v -e
syscalls:sys_enter_getppid -p PID bench/scripts/py_count.py` (a counting handler that does not
read _callchain), (c) the same with --python-callchain; interleaved (a, b, c for each depth, then
again), medians of the repeats. The BPF program's Python stack costs the workload's thread
(t_c - t_b) / N a call: the stack walk, and the longer record written to the ring. Target: at
most 1 us + 100 ns a frame; the fixed part and the slope are a least-squares line over 5, 20, 50.
delivered + lost == N is checked in every traced run. Then the consumer's side: depth 20 paced at
RATE_CONSUMER calls/s, --python-callchain, the handler reading event._callchain of every event
(Python frames named) or not: the ebpfprof process's on-CPU time (its dispatch thread's
/proc/PID/schedstat, from "attached" to exit) / events.
Runs for --python (default /usr/bin/python3.11) and, unless --no-pyenv, pyenv's 3.12 where it is.
Prints a table and writes its section of bench/RESULTS.md (unless --no-write or --quick).
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "bench" / "scripts"
EBPFPROF = [sys.executable, "-m", "ebpfprof"]
EVENT = "syscalls:sys_enter_getppid"
DEPTHS = (0, 5, 20, 50)
FIT_DEPTHS = (5, 20, 50)
PYENV_312 = Path("/root/.pyenv/versions/3.12.1/bin/python3.12")
CONSUMER_DEPTH = 20
RATE_CONSUMER = 10_000         # calls/s: the reading handler (~70 us an event here) keeps up
DRAIN_S = 0.5                  # after the loop, before the workload exits: the ring is read out

from results import machine, write_section  # noqa: E402  (bench/ is sys.path[0])
from run import idle_vcpus_poll, schedstat_ns  # noqa: E402


def target_ns(depth: int) -> float:
    return 1000 + 100 * depth


class Workload:
    """py_depth.py with its handshake: ready PID / (line) / done ELAPSED_NS / (line)."""

    def __init__(self, python: str, depth: int, n: int, rate: float = 0) -> None:
        args = [python, str(SCRIPTS / "py_depth.py"), str(depth), str(n)] + ([str(rate)] if rate else [])
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.pid = int(self.proc.stdout.readline().split()[1])

    def go(self) -> int:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline().split()[1])

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


def untraced(python: str, depth: int, n: int) -> dict:
    w = Workload(python, depth, n)
    ns = w.go()
    w.finish()
    return {"ns": ns}


def stopping_counts(lines: list[str]) -> tuple[int, int]:
    """(delivered, lost) from -v's 'stopping: ...; N events delivered, M lost' line."""
    for line in lines:
        m = re.search(r"stopping:.*?(\d+) events delivered, (\d+) lost", line)
        if m:
            return int(m.group(1)), int(m.group(2))
    return -1, -1


def traced(python: str, depth: int, n: int, callchain: bool, read: bool = False, rate: float = 0) -> dict:
    """One traced run: the workload's time, delivered/lost, consumer ns/event, first event's frames."""
    w = Workload(python, depth, n, rate)
    cmd = EBPFPROF + ["python", "-v", "-e", EVENT, "-p", str(w.pid)]
    cmd += ["--python-callchain"] if callchain else []
    cmd += [str(SCRIPTS / "py_count.py")] + (["read"] if read else [])
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
        w.kill()
        proc.kill()
        raise RuntimeError("ebpfprof did not attach:\n" + "".join(lines))
    if callchain and not any("Python frames for 1 process" in line for line in lines):
        w.kill()
        proc.kill()
        raise RuntimeError("ebpfprof found no Python process:\n" + "".join(lines))
    cpu0 = schedstat_ns(proc.pid)
    ns = w.go()
    time.sleep(DRAIN_S)               # the code objects are read while the process is there
    w.finish()
    out = proc.stdout.read()          # stderr belongs to read_err
    proc.wait(timeout=120)
    t.join(5)
    if "BENCH " not in out:
        raise RuntimeError("no BENCH line:\n" + out[-2000:] + "".join(lines[-40:]))
    result = json.loads(out.split("BENCH ", 1)[1].splitlines()[0])
    delivered, lost = stopping_counts(lines)
    result.update(ns=ns, delivered=delivered, lost=lost,
                  consumer_ns=(result["cpu_ns"] - cpu0) / max(1, result["events"]))
    return result


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares line y = a + b x: (a, b)."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


def version(python: str) -> str:
    out = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller runs (a smoke check, not for RESULTS.md)")
    ap.add_argument("--no-write", action="store_true", help="do not write bench/RESULTS.md")
    ap.add_argument("--python", default="/usr/bin/python3.11", help="the workload's interpreter")
    ap.add_argument("--no-pyenv", action="store_true", help=f"do not also run {PYENV_312}")
    ap.add_argument("--repeats", type=int, default=0, help="runs of each kind (default 5, --quick 2)")
    ap.add_argument("--no-poll-idle", action="store_true",
                    help="let idle vCPUs halt (see run.py's idle_vcpus_poll): noisier per-event figures")
    opts = ap.parse_args()
    with idle_vcpus_poll(not opts.no_poll_idle) as note:
        print(note)
        return run(opts, note)


def run(opts, idle_note: str) -> int:
    n = 200_000 if opts.quick else 1_000_000
    repeats = opts.repeats or (2 if opts.quick else 5)
    pythons = [opts.python] + ([str(PYENV_312)] if not opts.no_pyenv and PYENV_312.exists()
                               and str(PYENV_312) != opts.python else [])
    rows: list[tuple[str, str, str, str]] = []
    raw: list[str] = []

    def add(name, value, target="", ok=None):
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        rows.append((name, value, target, verdict))
        print(f"{name:<72} {value:>26} {target:>10} {verdict}", flush=True)

    for python in pythons:
        ver = version(python)
        label = f"{python} ({ver})"
        runs: dict[tuple[int, str], list[dict]] = {(d, k): [] for d in DEPTHS for k in "abc"}
        for rep in range(repeats):                  # interleaved: the VM's speed drifts
            for depth in DEPTHS:
                runs[depth, "a"].append(untraced(python, depth, n))
                runs[depth, "b"].append(traced(python, depth, n, callchain=False))
                runs[depth, "c"].append(traced(python, depth, n, callchain=True))
            print(f"  {label}: round {rep + 1}/{repeats} done", flush=True)

        add(f"**{label}**, {n:,} getppid() calls a run, {repeats} runs of each (a, b, c interleaved)", "")
        walk: dict[int, float] = {}
        for depth in DEPTHS:
            med = {k: statistics.median(r["ns"] for r in runs[depth, k]) / n for k in "abc"}
            # (c) - (b) in each round, then the median: the pairs ran next to each other
            diffs = [(c["ns"] - b["ns"]) / n for b, c in zip(runs[depth, "b"], runs[depth, "c"])]
            walk[depth] = statistics.median(diffs)
            frames = {tuple(r["python_frames"]) for r in runs[depth, "c"]}
            raw.append(f"{ver} depth {depth}: (c)-(b) ns/event per round: " + " ".join(f"{d:.0f}" for d in diffs))
            add(f"  depth {depth}: ns/call untraced (a) / traced (b) / traced with Python stack (c)",
                f"{med['a']:.0f} / {med['b']:.0f} / {med['c']:.0f}")
            target = "" if depth == 0 else f"<= {target_ns(depth):.0f}"
            add(f"  depth {depth}: Python stack's cost, median of (c) - (b) (ns/event; Python frames of the first event, named)",
                f"{walk[depth]:.0f} ({', '.join(f'{f} named {m}' for f, m in sorted(frames))})",
                target, None if depth == 0 else walk[depth] <= target_ns(depth))
            if depth:
                add(f"    the rounds' (c) - (b) (ns/event, in order)", " ".join(f"{d:.0f}" for d in diffs))
        a, b = fit(list(FIT_DEPTHS), [walk[d] for d in FIT_DEPTHS])
        add("  fixed part / per frame (ns, least squares over depths 5, 20, 50)", f"{a:.0f} / {b:.1f}",
            "<= 1000 / 100", a <= 1000 and b <= 100)
        bad = [(d, k, r) for (d, k), rs in runs.items() if k != "a" for r in rs
               if r["delivered"] + r["lost"] != n or r["events"] != r["delivered"]]
        lost = max(r["lost"] for (d, k), rs in runs.items() if k != "a" for r in rs)
        add(f"  delivered + lost == {n:,} in every traced run ({2 * len(DEPTHS) * repeats} runs; most lost)",
            "all" if not bad else f"{len(bad)} not: " + ", ".join(
                f"d{d}{k} {r['delivered']:,}+{r['lost']:,}" for d, k, r in bad[:3]), f"equal",
            not bad)
        add("    most events lost in one traced run", f"{lost:,}")

        # The consumer: depth 20, paced, --python-callchain; reading _callchain or not.
        cn = 20_000 if opts.quick else 50_000
        cons = {False: [], True: []}
        for _ in range(2 if opts.quick else 3):
            for read in (False, True):
                cons[read].append(traced(python, CONSUMER_DEPTH, cn, callchain=True, read=read, rate=RATE_CONSUMER))
        no, yes = (statistics.median(r["consumer_ns"] for r in cons[k]) for k in (False, True))
        ok = all(r["delivered"] + r["lost"] == cn and r["events"] == r["delivered"] for k in cons for r in cons[k])
        named = {tuple(r["python_frames"]) + tuple(r["last_python_frames"]) for r in cons[True]}
        add(f"    reading: Python frames of the first and the last event (named)",
            "; ".join(f"{a} ({b}), {c} ({d})" for a, b, c, d in sorted(named)))
        add(f"  consumer, depth {CONSUMER_DEPTH} at {RATE_CONSUMER:,}/s: us/event not reading / reading _callchain",
            f"{no / 1000:.3f} / {yes / 1000:.3f}")
        add(f"    reading _callchain (Python frames named): us/event; us a frame",
            f"{(yes - no) / 1000:.3f}; {(yes - no) / 1000 / CONSUMER_DEPTH:.3f}")
        add(f"    delivered + lost == {cn:,}; most lost (reading)",
            f"{'all' if ok else 'not all'}; {max(r['lost'] for r in cons[True]):,}", "equal", ok)

    print("\n".join(raw))
    if not opts.no_write and not opts.quick:
        write_results(rows, n, repeats, idle_note)
    return 0 if all(v != "FAIL" for *_, v in rows) else 1


def write_results(rows, n: int, repeats: int, idle_note: str) -> None:
    text = [f"## Python stacks (`bench/python_stack.py`, {time.strftime('%Y-%m-%d %H:%M %Z')})", "",
            f"Command: `.venv/bin/python bench/python_stack.py`. Machine: {machine()}; {idle_note}.",
            f"Workload: `PYTHON bench/scripts/py_depth.py DEPTH {n}` ({n:,} getppid() calls from a C loop, "
            "`deque(starmap(os.getppid, ...), 0)`, in a thread whose stack is DEPTH Python frames; depth 0: "
            "none, the thread state is found and no frame read), timed by itself: (a) untraced, (b) under "
            f"`ebpfprof python -v -e {EVENT} -p PID bench/scripts/py_count.py` (counting, not reading "
            "`_callchain`), (c) the same with `--python-callchain`; a, b, c for each depth in turn, "
            f"{repeats} rounds. The Python stack's cost = median over the rounds of ((c) - (b)) / N: what "
            "the BPF program's stack walk and its longer record cost the traced thread. Fixed part and "
            "slope: a least-squares line over depths 5, 20, 50. Consumer: depth 20 paced at "
            f"{RATE_CONSUMER:,} calls/s with `--python-callchain`, the handler reading `event._callchain` "
            "of every event or not; the ebpfprof process's on-CPU time from attach to exit / events.",
            "Target (issue #12, Speed): at most 1 us + 100 ns a frame in the kernel.", "",
            "| figure | value | target | |", "|---|---:|---:|---|"]
    text += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    write_section("## Python stacks", "\n".join(text) + "\n")
    print("\nwrote its section of bench/RESULTS.md")


if __name__ == "__main__":
    sys.exit(main())
