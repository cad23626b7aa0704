"""`ebpfprof trace` on live events: one printed line per event, exactly; -N, filters, -g, Ctrl-C
with its stop line, and a pipe into head that ends it quietly."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time

from runner import ROOT, Tracer, Workload, ebpfprof_cmd, workload_under

# perf-prof trace's line, as event.print() writes it
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} +(\S+) +(\d+) (\S{4}) \[(\d{3})\] "
                  r"(\d+)\.(\d{6}): (\S+): (.*)$")


class TraceRun(Tracer):
    """An `ebpfprof trace -v ARGS` run in the background (Tracer's helpers: started, signal, wait)."""

    def __init__(self, args: list[str], env: dict | None = None) -> None:
        self.args = args
        self.proc = subprocess.Popen(ebpfprof_cmd("trace", "-v", *args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
        self.stderr_lines: list[str] = []
        self._attached = threading.Event()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        self.stdout = ""


def trace_workload(wl: Workload, args: list[str]) -> TraceRun:
    run = TraceRun([*args, "-p", str(wl.pid)])
    try:
        run.wait_attached()
        assert wl.go()[0] == "done"
        wl.finish()
        assert run.wait() == 0, run.stderr
    finally:
        wl.kill()
        if run.proc.poll() is None:
            run.proc.kill()
    return run


def stop_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("ebpfprof: stopping: ")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_k_calls_print_k_lines(workload_bin):
    k = 2000
    wl = Workload(workload_bin, "getppid", str(k))
    run = trace_workload(wl, ["-e", "syscalls:sys_enter_getppid"])
    lines = run.stdout.splitlines()
    assert len(lines) == k
    for line in lines:
        m = LINE.match(line)
        assert m, line
        comm, tid, _flags, _cpu, _s, _us, name, rest = m.groups()
        assert (comm, int(tid), name, rest) == ("workload", wl.pid, "syscalls:sys_enter_getppid", "__syscall_nr=110")
    times = [int(m.group(5)) * 10**6 + int(m.group(6)) for m in map(LINE.match, lines)]
    assert times == sorted(times)      # one process on one CPU at a time: in order
    assert stop_line(run.stderr) == (f"ebpfprof: stopping: end of input (the -p processes exited); "
                                     f"{k} events delivered, 0 lost")
    assert "Traceback" not in run.stderr


def test_exit_after_n_prints_exactly_n(workload_bin):
    wl = Workload(workload_bin, "getppid", "10000")
    run = TraceRun(["-e", "syscalls:sys_enter_getppid", "-p", str(wl.pid), "-N", "5"])
    try:
        run.wait_attached()
        wl.go()
        assert run.wait() == 0, run.stderr
    finally:
        wl.kill()
    assert len(run.stdout.splitlines()) == 5
    assert all(LINE.match(line) for line in run.stdout.splitlines())
    assert stop_line(run.stderr) == "ebpfprof: stopping: -N 5; 5 events delivered, 0 lost"


def test_filter_in_the_kernel_and_two_selectors(workload_bin):
    """kill(getpid(), 0) K times: the filter keeps sig==0 only; enter and exit both print."""
    k = 30
    wl = Workload(workload_bin, "kill", str(k), "0")
    run = trace_workload(wl, ["-e", "syscalls:sys_enter_kill/sig==0/,syscalls:sys_exit_kill",
                              "-e", "syscalls:sys_enter_kill/sig!=0/alias=other/"])
    names = [LINE.match(line).group(7) for line in run.stdout.splitlines()]
    assert names.count("syscalls:sys_enter_kill") == k and names.count("syscalls:sys_exit_kill") == k
    assert "syscalls:other" not in names
    assert stop_line(run.stderr).endswith(f"; {2 * k} events delivered, 0 lost")


def test_call_graph_prints_frames_under_each_event(workload_bin):
    wl = Workload(workload_bin, "kill", "3", "0")
    run = trace_workload(wl, ["-g", "-e", "syscalls:sys_enter_kill"])
    lines = run.stdout.splitlines()
    heads = [i for i, line in enumerate(lines) if LINE.match(line)]
    assert len(heads) == 3
    frames = lines[heads[0] + 1:heads[1]]
    assert frames and all(re.match(r"^    [0-9a-f]{16} \S+\+0x[0-9a-f]+ \(.+\)$", f) for f in frames), frames
    assert any("[kernel.kallsyms]" in f for f in frames)


def test_ctrl_c_prints_the_stop_line(workload_bin):
    """A workload that made its K calls and waits: Ctrl-C ends the trace, K lines, exit 0."""
    k = 100
    wl = Workload(workload_bin, "getppid", str(k))
    run = TraceRun(["-e", "syscalls:sys_enter_getppid", "-p", str(wl.pid)])
    try:
        run.wait_attached()
        wl.go()
        run.signal(signal.SIGINT)
        assert run.wait() == 0, run.stderr
    finally:
        wl.finish()
        wl.kill()
    assert len(run.stdout.splitlines()) == k
    assert stop_line(run.stderr) == f"ebpfprof: stopping: SIGINT; {k} events delivered, 0 lost"
    assert "Traceback" not in run.stderr


def _wait_holding_programs(pid: int, timeout: float = 30) -> None:
    """Until process PID holds BPF programs (-q says nothing when attached), and a little more
    for its gates to open (right after)."""
    from bpfobjs import program_ids_of

    deadline = time.monotonic() + timeout
    while not program_ids_of(pid):
        assert time.monotonic() < deadline, "ebpfprof did not attach in time"
        time.sleep(0.05)
    time.sleep(0.3)


def test_quiet_has_no_stop_line(workload_bin):
    wl = Workload(workload_bin, "getppid", "10")
    proc = subprocess.Popen(ebpfprof_cmd("trace", "-q", "-e", "syscalls:sys_enter_getppid", "-p", str(wl.pid)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = workload_under(proc, wl, lambda: _wait_holding_programs(proc.pid))
    assert proc.returncode == 0 and err == ""
    assert len(out.splitlines()) == 10


def test_a_pipe_into_head_ends_quietly(workload_bin, tmp_path):
    """`trace | head -3` on a flood: three lines, ebpfprof exits 0, and says nothing but what -v
    asked for and the losses the flood caused before head closed the pipe (no stop line, no
    traceback)."""
    wl = Workload(workload_bin, "getppid", "2000000")
    errfile = tmp_path / "err"
    cmd = " ".join(ebpfprof_cmd("trace", "-v", "-e", "syscalls:sys_enter_getppid", "-p", str(wl.pid)))
    proc = subprocess.Popen(["bash", "-c", f"{cmd} 2>{errfile} | head -3; echo status ${{PIPESTATUS[0]}}"],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not (errfile.exists() and "attached" in errfile.read_text()):
            assert time.monotonic() < deadline and proc.poll() is None, "ebpfprof did not attach"
            time.sleep(0.05)
        wl.go()
        out, _ = proc.communicate(timeout=60)
    finally:
        wl.kill()
        if proc.poll() is None:
            proc.kill()
    lines = out.splitlines()
    assert len(lines) == 4 and all(LINE.match(line) for line in lines[:3]), out
    assert lines[3] == "status 0"
    for line in errfile.read_text().splitlines():
        assert (line.startswith(("ebpfprof: attached ", "ebpfprof: no kernel headers"))
                or re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} python: lost \d+ events$", line)), line


def test_a_bad_filter_is_one_line_and_exit_2():
    proc = subprocess.run(ebpfprof_cmd("trace", "-e", "sched:sched_wakeup/pid>>1000/"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("ebpfprof: error: sched:sched_wakeup filter 'pid>>1000': ")
    assert "Traceback" not in proc.stderr
