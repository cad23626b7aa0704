"""Smoke tests of the example scripts in tools/: each runs on live events from a known workload
and its output must show that workload.

The tools are run with the command line their docstring gives (the selectors of their shebang
line), by absolute path, as `ebpfprof python ... tools/NAME.py`.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from runner import ROOT, Tracer, Workload

TOOLS = ROOT / "tools"


def shebang_args(tool: str) -> list[str]:
    """The ebpfprof options of a tool's shebang line: everything after `ebpfprof python`."""
    first = (TOOLS / tool).read_text().splitlines()[0]
    prefix = "#!/usr/bin/env -S ebpfprof python "
    assert first.startswith(prefix), f"{tool}: unexpected shebang {first!r}"
    return first[len(prefix):].split()


def run_tool(tool: str, options: tuple[str, ...] = (), args: tuple[str, ...] = ()) -> Tracer:
    """`ebpfprof python SHEBANG-OPTIONS OPTIONS tools/TOOL ARGS`, attached."""
    tracer = Tracer([*shebang_args(tool), *options, str(TOOLS / tool), *args])
    tracer.wait_attached()
    return tracer


def stop(tracer: Tracer) -> str:
    tracer.signal(signal.SIGINT)
    assert tracer.wait() == 0, tracer.stderr
    return output(tracer)


def output(tracer: Tracer) -> str:
    """What the tool printed, after ebpfprof's `Loaded module: PATH` line."""
    loaded, _, rest = tracer.stdout.partition("\n")
    assert loaded.startswith("Loaded module: ") and loaded.endswith(".py"), tracer.stdout
    return rest


def test_exec_snoop(tmp_path):
    """Three execs of a uniquely named binary: three lines with our pid as PPID, one summary row."""
    binary = tmp_path / "ebpfprof-smoke-true"
    shutil.copy("/bin/true", binary)
    tracer = run_tool("exec_snoop.py")
    try:
        for _ in range(3):
            subprocess.run([str(binary), "arg1"], check=True)
    finally:
        out = stop(tracer)
    lines = [l.split() for l in out.splitlines() if str(binary) in l]
    live = [l for l in lines if re.fullmatch(r"\d+\.\d{3}", l[0])]
    assert len(live) == 3, out
    assert all(int(l[2]) == os.getpid() and l[3:] in ([str(binary), "arg1"], [str(binary), "-"])
               for l in live), out
    summary = [l for l in lines if l not in live]
    assert summary == [["3", "3", summary[0][2], str(binary)]], out
    assert out.splitlines()[0].split() == ["TIME(s)", "PID", "PPID", "PROGRAM", "ARGS"]


def test_syscall_top(workload_bin):
    """-p WORKLOAD making 5000 getppid() calls: the run's table has exactly that row."""
    wl = Workload(workload_bin, "getppid", "5000")
    try:
        tracer = run_tool("syscall_top.py", options=("-p", str(wl.pid)), args=("3",))
        wl.go()
        wl.finish()                       # -p: the run ends with the workload
        assert tracer.wait() == 0, tracer.stderr
    finally:
        wl.kill()
    out = output(tracer)
    whole = out[out.index("whole run:"):].splitlines()
    assert ["workload", "getppid", "5,000"] == whole[2].split()[:3], out
    assert len(whole) <= 2 + 3, out      # TOP=3


def test_open_files(workload_bin):
    """-p WORKLOAD opening a missing file 7 times: one row, 7 opens, 7 ENOENT."""
    wl = Workload(workload_bin, "openat", "7", "/nonexistent/ebpfprof-smoke")
    try:
        tracer = run_tool("open_files.py", options=("-p", str(wl.pid)))
        wl.go()
        wl.finish()
        assert tracer.wait() == 0, tracer.stderr
    finally:
        wl.kill()
    rows = [l.split() for l in output(tracer).splitlines()[1:] if l.strip()]
    assert rows == [["workload", "1", "7", "7", "0", "0", "7", "ENOENT:7"]], tracer.stdout


PINGPONG = r'''
import ctypes, os
ctypes.CDLL(None).prctl(15, b"ebpfprof-pong", 0, 0, 0)   # PR_SET_NAME: a name to find in the table
r1, w1 = os.pipe(); r2, w2 = os.pipe()
if os.fork() == 0:
    for _ in range(2000):
        os.read(r1, 1); os.write(w2, b"x")
    os._exit(0)
for _ in range(2000):
    os.write(w1, b"x"); os.read(r2, 1)
os.wait()
'''


def test_wakeup_latency():
    """Two processes waking each other 2000 times: their command shows up with wakeups."""
    tracer = run_tool("wakeup_latency.py", args=("100",))
    try:
        subprocess.run([sys.executable, "-c", PINGPONG], check=True, timeout=60)
        time.sleep(1.2)                   # one -i 1000 interval at least
    finally:
        out = stop(tracer)
    assert re.search(r"^\d+ wakeups completed in the last interval", out, re.M), out
    rows = {l.split()[0]: l.split()[1:] for l in out[out.index("COMMAND"):].splitlines()[1:] if l.strip()}
    assert "ebpfprof-pong" in rows, out
    wakeups, p50, p99, worst = rows["ebpfprof-pong"]
    assert int(wakeups) >= 1000 and 0 <= float(p50) <= float(p99) <= float(worst), out


# -- profiler sources ---------------------------------------------------------------------------
# tests/testprogs programs with the -w handshake ("ready PID ...", go, "done ...", exit), as
# Workload drives tests/testprogs/workload.

def test_flamegraph(tmp_path):
    """-p BUSY spinning 1.5 s in busy_loop: the folded file's heaviest stack ends in busy_loop,
    under main, named busy, and holds most of 1.5 s of 997 Hz samples."""
    from runner import build_testprog

    wl = Workload(build_testprog("busy"), "-s", "1.5")
    out_file = tmp_path / "out.folded"
    try:
        tracer = run_tool("flamegraph.py", options=("-p", str(wl.pid)), args=(str(out_file),))
        wl.go()
        wl.finish()
        assert tracer.wait() == 0, tracer.stderr
    finally:
        wl.kill()
    assert re.search(rf"^{re.escape(str(out_file))}: \d+ stacks, \d+ samples$", output(tracer), re.M), tracer.stdout
    rows = [line.rsplit(" ", 1) for line in out_file.read_text().splitlines()]
    stack, n = max(rows, key=lambda r: int(r[1]))
    assert stack.startswith("busy;") and stack.endswith(";main;busy_loop"), rows[:5]
    assert int(n) >= 0.7 * 1.5 * 997, rows


def test_faults_by_mapping():
    """-p FAULTS touching 2000 fresh pages of one anonymous mapping: its row has exactly 2000."""
    from runner import build_testprog

    wl = Workload(build_testprog("faults"), "-p", "2000")
    try:
        tracer = run_tool("faults_by_mapping.py", options=("-p", str(wl.pid)))
        wl.go()
        wl.finish()
        assert tracer.wait() == 0, tracer.stderr
    finally:
        wl.kill()
    out = output(tracer)
    whole = out[out.index("whole run:"):].splitlines()
    rows = [l.split() for l in whole[2:]]
    assert any(r[:3] == ["faults", str(wl.pid), "2,000"] and r[3] == "[anon" for r in rows), out


def test_cpu_slices():
    """BUSY spinning 1.5 s: its row's switch time and in-slice samples agree with 1.5 s, and its
    hottest function is busy_loop."""
    from runner import build_testprog

    tracer = run_tool("cpu_slices.py")
    wl = Workload(build_testprog("busy"), "-s", "1.5")
    try:
        wl.go()
        wl.finish()
        time.sleep(0.2)
    finally:
        wl.kill()
        out = stop(tracer)
    rows = {l.split()[0]: l.split()[1:] for l in out.splitlines()[1:-1] if l.strip()}
    assert "busy" in rows, out
    slices, oncpu_ms, _mean, samples, sampled_ms, function, _pct = rows["busy"]
    assert 1400 <= float(oncpu_ms) <= 2000, out
    assert int(samples) >= 0.7 * 1.5 * 997 and abs(float(sampled_ms) - float(oncpu_ms)) < 0.2 * float(oncpu_ms), out
    assert function == "busy_loop", out


# -- probe sources ------------------------------------------------------------------------------

ALLOCS_C = r'''
/* allocs -w -n N: N times make_buffer() mallocs 65536 bytes and make_name() 32, from run(),
 * between Workload's "ready PID" / "done N" handshakes. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
__attribute__((noinline)) void *make_buffer(void) { return malloc(65536); }
__attribute__((noinline)) void *make_name(void) { return malloc(32); }
__attribute__((noinline)) void run(long n)
{
	for (long i = 0; i < n; i++) {
		free(make_buffer());
		free(make_name());
	}
}
static void wait_line(void) { char buf[64]; if (!fgets(buf, sizeof(buf), stdin)) return; }
int main(int argc, char **argv)
{
	long n = argc > 3 ? atol(argv[3]) : 0;           /* allocs -w -n N */
	printf("ready %d\n", getpid());
	fflush(stdout);
	wait_line();
	run(n);
	printf("done %ld\n", n);
	fflush(stdout);
	wait_line();
	return 0;
}
'''


def test_malloc_sizes(tmp_path):
    """-p ALLOCS making 1000 mallocs of 64 KiB in make_buffer() and 1000 of 32 bytes in
    make_name(): two sites, named with their callers, with exactly those calls and bytes, each
    in its one power-of-two bucket."""
    src = tmp_path / "allocs.c"
    src.write_text(ALLOCS_C)
    binary = tmp_path / "allocs"
    subprocess.run(["gcc", "-O0", "-g", "-fno-omit-frame-pointer", "-o", str(binary), str(src)], check=True)
    wl = Workload(binary, "-n", "1000")
    try:
        tracer = run_tool("malloc_sizes.py", options=("-p", str(wl.pid)))
        wl.go()
        wl.finish()
        assert tracer.wait() == 0, tracer.stderr
    finally:
        wl.kill()
    out = output(tracer)
    assert out.startswith("whole run: 2,000 malloc() calls, 65,568,000 bytes, "), out
    # each site: "function+0xOFF (FILE) <- caller+0xOFF <- its caller+0xOFF", then its lines
    blocks = {re.sub(r"\+0x[0-9a-f]+", "", b.splitlines()[0]): b.splitlines()[1:] for b in out.split("\n\n")[1:]}
    buffer = blocks[f"make_buffer ({binary}) <- run <- main"]
    assert buffer[0].strip() == "1,000 calls, 65,536,000 bytes, 65,536 per call", out
    assert buffer[2].split()[:5] == ["65536", "->", "131071", ":", "1000"] and len(buffer) == 3, out
    name = blocks[f"make_name ({binary}) <- run <- main"]
    assert name[0].strip() == "1,000 calls, 32,000 bytes, 32 per call", out
    assert name[2].split()[:5] == ["32", "->", "63", ":", "1000"] and len(name) == 3, out


# -- Python frames ------------------------------------------------------------------------------

OPENER_PY = r'''
import pathlib, sys

def open_missing():
    try:
        open("/nonexistent/ebpfprof-smoke")  # DIRECT
    except FileNotFoundError:
        pass

class Loader:
    def load(self):
        pathlib.Path(__file__).read_text()  # VIA PATHLIB

print("ready", flush=True)
for line in sys.stdin:                  # each "go": 7 opens from one line, 3 through pathlib
    if line.strip() != "go":
        break
    for _ in range(7):
        open_missing()
    for _ in range(3):
        Loader().load()
    print("done", flush=True)
'''


def test_python_lines(tmp_path):
    """-p PYTHON opening a file 7 times from one line and 3 times through pathlib's read_text():
    the table has exactly those two lines with those counts (pathlib's own line for the 3); with
    PREFIX the program's directory, the program's line that called read_text() instead."""
    import pathlib as stdlib_pathlib

    program = tmp_path / "opener.py"
    program.write_text(OPENER_PY)
    source = OPENER_PY.splitlines()
    direct = next(n for n, text in enumerate(source, 1) if text.endswith("# DIRECT"))
    via = next(n for n, text in enumerate(source, 1) if text.endswith("# VIA PATHLIB"))
    proc = subprocess.Popen([sys.executable, str(program)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    outs = []
    try:
        assert proc.stdout.readline().strip() == "ready"
        for args in ((), ("15", str(tmp_path) + "/")):
            tracer = run_tool("python_lines.py", options=("-p", str(proc.pid)), args=args)
            proc.stdin.write("go\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "done"
            outs.append(stop(tracer))        # stopped while the program lives: its frames are named
            assert f"Python frames for 1 process(es): {proc.pid} (Python 3." in tracer.stderr, tracer.stderr
    finally:
        proc.kill()
        proc.wait()
    rows = [l.split() for l in outs[0].splitlines()[2:]]
    assert outs[0].splitlines()[:2] == ["whole run: 10 events from 2 lines",
                                        "     COUNT  FILE:LINE FUNCTION"], outs[0]
    assert rows[0] == ["7", f"{program}:{direct}", "open_missing"], outs[0]
    file, _, line = rows[1][1].rpartition(":")
    assert rows[1][0] == "3" and file == stdlib_pathlib.__file__ and int(line) > 0, outs[0]
    assert rows[1][2] == "Path.open" and len(rows) == 2, outs[0]
    rows = [l.split() for l in outs[1].splitlines()[2:]]
    assert rows == [["7", f"{program}:{direct}", "open_missing"],
                    ["3", f"{program}:{via}", "Loader.load"]], outs[1]
