#!/usr/bin/env python3
"""How fast big wildcards start and stop (issue #9 §4), and what a traced tracepoint costs
other perf users (§3).

    .venv/bin/python bench/startstop.py

Start: from the command's exec to __init__ (every tracepoint attached and recording).
Stop: from SIGINT to the command's exit. Targets: syscalls:* starts in <= 1.5 s and exits in
<= 2 s. Each row is the median of 3 runs. Prints a Markdown table (bench/RESULTS.md quotes it).
"""
from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EBPFPROF = [sys.executable, "-m", "ebpfprof"]
SCRIPT = '''
def __init__():
    print("INIT", flush=True)
def __sample__(event):
    pass
'''
ROWS = [("sched:*", None), ("syscalls:sys_enter_*", None), ("syscalls:*", (1.5, 2.0))]


def tracepoints(pattern: str) -> int:
    system, name = pattern.split(":")
    import fnmatch
    base = Path("/sys/kernel/tracing/events")
    return sum(1 for s in base.iterdir() if fnmatch.fnmatch(s.name, system) and s.is_dir()
               for n in s.iterdir() if fnmatch.fnmatch(n.name, name) and (n / "format").exists())


def one_run(pattern: str, script: Path) -> tuple[float, float]:
    t0 = time.monotonic()
    proc = subprocess.Popen([*EBPFPROF, "python", "-q", "-e", pattern, str(script)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    started = time.monotonic() - t0
    if line.strip() != "INIT":
        raise RuntimeError(f"{pattern}: {line}{proc.stderr.read()}")
    time.sleep(0.2)
    t1 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=300)
    return started, time.monotonic() - t1


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "init.py"
        script.write_text(SCRIPT)
        print("| `-e` | tracepoints | start to `__init__` | Ctrl-C to exit | target |")
        print("|---|---:|---:|---:|---|")
        ok = True
        for pattern, target in ROWS:
            runs = [one_run(pattern, script) for _ in range(3)]
            start = statistics.median(r[0] for r in runs)
            stop = statistics.median(r[1] for r in runs)
            verdict = ""
            if target:
                passed = start <= target[0] and stop <= target[1]
                ok &= passed
                verdict = f"≤ {target[0]} s / ≤ {target[1]} s: {'PASS' if passed else 'FAIL'}"
            print(f"| `{pattern}` | {tracepoints(pattern)} | {start:.2f} s | {stop:.2f} s | {verdict} |")
    return 0 if ok else 1


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
