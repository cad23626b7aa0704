#!/usr/bin/env python3
"""The soak (issue #9 §8): a long run at a high rate; nothing lost silently, nothing grows.

    make soak                  # 10 minutes; SOAK_SECONDS=60 make soak for a short one

A workload makes getppid() calls paced at --rate for --seconds; ebpfprof traces it under -p
with a counting script. Checks: delivered + reported lost == the workload's calls (exact),
and the ebpfprof process's RSS and open fds stay flat (sampled every second; the last
sample may exceed the one at the end of the first 10 % by at most 5 % RSS and 0 fds).
Prints a Markdown summary for bench/RESULTS.md; exit 1 if a check fails.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = '''
n = 0
def syscalls__sys_enter_getppid(event):
    global n
    n += 1
def __exit__():
    print("DELIVERED", n, flush=True)
'''


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(l for l in f if l.startswith("VmRSS:")).split()[1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 600)))
    ap.add_argument("--rate", type=float, default=1_000_000, help="getppid() calls per second")
    args = ap.parse_args()
    exe = Path(tempfile.mkdtemp()) / "workload"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(ROOT / "tests/testprogs/workload.c")], check=True)
    calls = int(args.seconds * args.rate)
    wl = subprocess.Popen([str(exe), "-w", "rate", str(calls), str(args.rate)],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    wl_pid = int(wl.stdout.readline().split()[1])
    script = exe.parent / "count.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, "-m", "ebpfprof", "python", "-v", "-e", "syscalls:sys_enter_getppid",
                             "-p", str(wl_pid), str(script)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    err: list[str] = []
    attached = threading.Event()

    def read_err():
        for line in proc.stderr:
            err.append(line)
            if "attached" in line:
                attached.set()
        attached.set()
    threading.Thread(target=read_err, daemon=True).start()
    if not attached.wait(60):
        raise SystemExit("ebpfprof did not attach:\n" + "".join(err))
    samples: list[tuple[float, int, int]] = []
    wl.stdin.write("go\n")
    wl.stdin.flush()
    t0 = time.monotonic()
    done = threading.Event()

    def wait_done():
        wl.stdout.readline()
        done.set()
    threading.Thread(target=wait_done, daemon=True).start()
    while not done.wait(1.0):
        samples.append((time.monotonic() - t0, rss_kib(proc.pid), len(os.listdir(f"/proc/{proc.pid}/fd"))))
    elapsed = time.monotonic() - t0
    wl.stdin.write("exit\n")
    wl.stdin.flush()
    wl.wait()
    out = proc.stdout.read()
    proc.wait(timeout=120)
    delivered = int(re.search(r"DELIVERED (\d+)", out).group(1))
    lost = sum(int(x) for x in re.findall(r"python: lost (\d+) events", "".join(err)))
    early = samples[max(0, len(samples) // 10 - 1)] if samples else (0, 0, 0)
    last = samples[-1] if samples else (0, 0, 0)
    exact = delivered + lost == calls
    flat = last[1] <= early[1] * 1.05 and last[2] <= early[2]
    print(f"| soak | {args.seconds:.0f} s at {args.rate:,.0f}/s requested ({calls / elapsed:,.0f}/s made) |")
    print("|---|---|")
    print(f"| calls made | {calls:,} |")
    print(f"| delivered + lost | {delivered:,} + {lost:,} = {delivered + lost:,}: {'PASS' if exact else 'FAIL'} |")
    print(f"| RSS at 10 % / at the end | {early[1] / 1024:.1f} / {last[1] / 1024:.1f} MiB |")
    print(f"| open fds at 10 % / at the end | {early[2]} / {last[2]}: {'PASS' if flat else 'FAIL'} |")
    return 0 if exact and flat else 1


if __name__ == "__main__":
    sys.exit(main())
