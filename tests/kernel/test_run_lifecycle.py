"""How a run starts, goes on and ends: callbacks, signals, losses, order, and nothing left behind."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from bpfobjs import kernel_fds_of, loaded_program_ids, program_ids_of
from runner import Tracer, Workload, trace_workload, write_script

EXIT_SCRIPT = '''
n = 0
def __init__():
    print("INIT", flush=True)
def syscalls__sys_enter_getppid(event):
    global n
    n += 1
def __exit__():
    print("EXIT", n, flush=True)
'''


def test_session_releases_every_fd_in_process():
    """TracingSession closes every BPF and perf fd it opened, also when its body raises, and
    also with two programs on one tracepoint (alias=)."""
    from ebpfprof.options import RunConfig
    from ebpfprof.resolve import resolve_selectors
    from ebpfprof.run.events import event_classes
    from ebpfprof.run.script import Callbacks
    from ebpfprof.run.session import TracingSession
    from ebpfprof.sources import sources_for

    config = RunConfig(events=("syscalls:sys_enter_getppid,syscalls:sys_enter_getppid//alias=again/,"
                               "sched:sched_process_exec",))
    before = kernel_fds_of()
    specs = resolve_selectors(config.events, config)
    classes = event_classes([s.event for s in specs], None, Callbacks(sample=lambda e: None))
    for raise_inside in (False, True):
        with pytest.raises(RuntimeError) if raise_inside else _nothing():
            with TracingSession(sources_for(specs, config), classes, None) as session:
                session.start()
                held = program_ids_of()
                # one per selector, and the comm tracker's three (exec, fork, rename)
                assert len(held) == 3 + 3, "one program per selector while attached"
                assert kernel_fds_of() != before
                session.reader.drain()
                if raise_inside:
                    raise RuntimeError("boom")
        assert kernel_fds_of() == before
        assert not held & loaded_program_ids(), "programs still loaded after the session closed"


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "-N", "end of input"])
def test_every_exit_runs_exit_and_detaches(tmp_path, workload_bin, how):
    wl = Workload(workload_bin, "getppid", "1000")
    script = write_script(tmp_path, EXIT_SCRIPT)
    extra = ["-N", "10"] if how == "-N" else []
    tracer = Tracer(["-e", "syscalls:sys_enter_getppid", "-p", str(wl.pid), *extra, str(script)])
    try:
        tracer.wait_attached()
        held = program_ids_of(tracer.proc.pid)
        assert held, "ebpfprof holds its program while running"
        wl.go()
        if how in ("SIGINT", "SIGTERM"):
            time.sleep(0.2)
            tracer.signal(getattr(signal, how))
        elif how == "end of input":
            wl.finish()
        rc = tracer.wait()
    finally:
        wl.kill()
    assert rc == 0, tracer.stderr
    assert "INIT" in tracer.stdout
    m = re.search(r"EXIT (\d+)", tracer.stdout)
    assert m, tracer.stdout + tracer.stderr
    assert int(m.group(1)) == (10 if how == "-N" else 1000)
    assert not held & loaded_program_ids(), "a program outlived the run"
    assert "Traceback" not in tracer.stderr


def test_exception_in_init_detaches_and_delivers_nothing(tmp_path):
    """__init__ runs with everything recording (its own getppid() calls are recorded); when it
    raises, the run detaches, delivers nothing, and exits non-zero."""
    before = loaded_program_ids()
    script = write_script(tmp_path, '''
import os
def __init__():
    for _ in range(100):
        os.getppid()
    raise ValueError("no config file")
def __exit__():
    print("EXIT RAN")
def __sample__(event):
    print("EVENT")
''')
    tracer = Tracer(["-e", "syscalls:sys_enter_getppid", str(script)])
    rc = tracer.wait()
    assert rc != 0
    err = tracer.stderr
    assert "ValueError: no config file" in err
    assert 'line 6, in __init__' in err          # the script's own traceback
    assert "ebpfprof: error: the script's __init__() raised an exception; nothing was delivered" in err
    assert "EXIT RAN" not in tracer.stdout and "EVENT" not in tracer.stdout
    assert loaded_program_ids() <= before, "a program outlived the run"


def test_handler_exception_prints_traceback_and_goes_on(tmp_path, workload_bin):
    wl = Workload(workload_bin, "getppid", "6")
    script = write_script(tmp_path, '''
n = 0
def syscalls__sys_enter_getppid(event):
    global n
    n += 1
    if n % 2 == 0:
        raise KeyError(f"bad event {n}")
def __exit__():
    print("HANDLED", n)
''')
    tracer = Tracer(["-e", "syscalls:sys_enter_getppid", "-p", str(wl.pid), str(script)])
    try:
        tracer.wait_attached()
        wl.go()
        wl.finish()
        rc = tracer.wait()
    finally:
        wl.kill()
    assert rc == 0
    assert "HANDLED 6" in tracer.stdout
    assert tracer.stderr.count("Traceback (most recent call last)") == 3
    assert "KeyError: 'bad event 2'" in tracer.stderr and "KeyError: 'bad event 6'" in tracer.stderr


def test_sigusr2_prints_statistics_then_print_stat(tmp_path, workload_bin):
    wl = Workload(workload_bin, "getppid", "500")
    script = write_script(tmp_path, '''
def syscalls__sys_enter_getppid(event):
    pass
def __print_stat__(indent):
    print(" " * indent + "SCRIPT STATS", flush=True)
''')
    tracer = Tracer(["-e", "syscalls:sys_enter_getppid", "-p", str(wl.pid), str(script)])
    try:
        tracer.wait_attached()
        wl.go()
        time.sleep(0.2)
        tracer.signal(signal.SIGUSR2)
        time.sleep(0.3)
        wl.finish()
        assert tracer.wait() == 0
    finally:
        wl.kill()
    out = tracer.stdout.splitlines()
    stats = [i for i, line in enumerate(out) if "ebpfprof: records" in line]
    assert stats, tracer.stdout
    assert "delivered 500" in out[stats[0]]
    assert "syscalls:sys_enter_getppid: delivered 500" in out[stats[0] + 1]
    assert out[stats[0] + 2] == "  SCRIPT STATS"


def test_interval_sees_everything_buffered(tmp_path, workload_bin):
    """__interval__ runs every -i ms, after what is buffered has been delivered."""
    k = 20000
    wl = Workload(workload_bin, "getppid", str(k))
    script = write_script(tmp_path, '''
n = 0
def syscalls__sys_enter_getppid(event):
    global n
    n += 1
def __interval__():
    print("INTERVAL", n, flush=True)
''')
    tracer = Tracer(["-e", "syscalls:sys_enter_getppid", "-p", str(wl.pid), "-i", "100", str(script)])
    try:
        tracer.wait_attached()
        time.sleep(0.25)
        wl.go()
        time.sleep(0.35)
        wl.finish()
        assert tracer.wait() == 0
    finally:
        wl.kill()
    counts = [int(x) for x in re.findall(r"INTERVAL (\d+)", tracer.stdout)]
    assert 4 <= len(counts) <= 9, counts
    assert counts[0] == 0
    assert counts[-1] == k, counts


@pytest.mark.parametrize("order", [False, True])
def test_losses_are_counted_exactly(tmp_path, workload_bin, order):
    """A tiny ring and a slow handler lose events: delivered + lost == what happened, and the
    losses reach __lost__ (with --order: the timestamps around the gap) and stderr."""
    k = 30000
    wl = Workload(workload_bin, "getppid", str(k))
    script = write_script(tmp_path, '''
import time
n = 0
gaps = []
def syscalls__sys_enter_getppid(event):
    global n
    n += 1
    if n < 200:
        time.sleep(0.001)
def __lost__(start, end):
    gaps.append((start, end))
def __exit__():
    print("DELIVERED", n)
    print("GAPS", len(gaps), "ORDERED", all(0 < s < e for s, e in gaps), "ZERO", all(s == e == 0 for s, e in gaps))
''')
    extra = ["--order"] if order else []
    tracer = trace_workload(wl, ["-e", "syscalls:sys_enter_getppid", "-p", str(wl.pid), "-m", "1", *extra, str(script)])
    delivered = int(re.search(r"DELIVERED (\d+)", tracer.stdout).group(1))
    reported = [int(x) for x in re.findall(r"python: lost (\d+) events", tracer.stderr)]
    assert reported, tracer.stderr
    assert delivered < k
    assert delivered + sum(reported) == k, tracer.stderr
    gaps = re.search(r"GAPS (\d+) ORDERED (\w+) ZERO (\w+)", tracer.stdout)
    assert int(gaps.group(1)) >= 1
    if order:
        assert gaps.group(2) == "True"
    else:
        assert gaps.group(3) == "True"


def test_order_delivers_in_time_order(tmp_path, workload_bin):
    if os.cpu_count() < 2:
        pytest.skip("needs 2 CPUs")
    wls = [Workload(workload_bin, "getppid", "50000") for _ in range(2)]
    for cpu, wl in enumerate(wls):
        subprocess.run(["taskset", "-pc", str(cpu), str(wl.pid)], check=True, capture_output=True)
    script = write_script(tmp_path, '''
last = 0
n = backwards = 0
cpus = set()
def syscalls__sys_enter_getppid(event):
    global last, n, backwards
    n += 1
    cpus.add(event._cpu)
    if event._time < last:
        backwards += 1
    last = event._time
def __exit__():
    print("N", n, "BACKWARDS", backwards, "CPUS", sorted(cpus))
''')
    pids = ",".join(str(w.pid) for w in wls)
    tracer = Tracer(["-e", "syscalls:sys_enter_getppid", "-p", pids, "--order", str(script)])
    try:
        tracer.wait_attached()
        for wl in wls:   # both at once, so their events interleave in the ring
            wl.proc.stdin.write("go\n")
            wl.proc.stdin.flush()
        for wl in wls:
            wl.proc.stdout.readline()
            wl.finish()
        assert tracer.wait() == 0, tracer.stderr
    finally:
        for wl in wls:
            wl.kill()
    assert "N 100000 BACKWARDS 0 CPUS [0, 1]" in tracer.stdout, tracer.stdout


def test_losses_are_counted_exactly_on_the_scratch_path(tmp_path, workload_bin):
    """The same accounting for records built in the per-CPU scratch buffer (callchains)."""
    k = 20000
    wl = Workload(workload_bin, "getppid", str(k))
    script = write_script(tmp_path, '''
import time
n = 0
def syscalls__sys_enter_getppid(event):
    global n
    n += 1
    if n < 100:
        time.sleep(0.001)
def __exit__():
    print("DELIVERED", n)
''')
    tracer = Tracer(["-e", "syscalls:sys_enter_getppid//stack/", "--no-user-callchain", "-p", str(wl.pid),
                     "-m", "1", str(script)])
    try:
        tracer.wait_attached()
        wl.go()
        wl.finish()
        assert tracer.wait() == 0, tracer.stderr
    finally:
        wl.kill()
    delivered = int(re.search(r"DELIVERED (\d+)", tracer.stdout).group(1))
    reported = sum(int(x) for x in re.findall(r"python: lost (\d+) events", tracer.stderr))
    assert 0 < delivered < k
    assert delivered + reported == k, tracer.stderr


def test_sys_exit_in_a_handler_stops_the_run_with_its_code(tmp_path, workload_bin):
    wl = Workload(workload_bin, "getppid", "100")
    script = write_script(tmp_path, '''
import sys
n = 0
def syscalls__sys_enter_getppid(event):
    global n
    n += 1
    if n == 5:
        sys.exit(3)
def __exit__():
    print("EXIT", n)
''')
    tracer = Tracer(["-e", "syscalls:sys_enter_getppid", "-p", str(wl.pid), str(script)])
    try:
        tracer.wait_attached()
        held = program_ids_of(tracer.proc.pid)
        wl.go()
        rc = tracer.wait()
    finally:
        wl.kill()
    assert rc == 3, tracer.stderr
    assert "EXIT 5" in tracer.stdout
    assert "Traceback" not in tracer.stderr
    assert not held & loaded_program_ids()


def test_second_sigint_stops_a_handler_that_never_returns(tmp_path, workload_bin):
    wl = Workload(workload_bin, "getppid", "3")
    script = write_script(tmp_path, '''
def syscalls__sys_enter_getppid(event):
    print("STUCK", flush=True)
    while True:
        pass
def __exit__():
    print("EXIT RAN", flush=True)
''')
    tracer = Tracer(["-e", "syscalls:sys_enter_getppid", "-p", str(wl.pid), str(script)])
    try:
        tracer.wait_attached()
        held = program_ids_of(tracer.proc.pid)
        wl.go()
        time.sleep(0.5)
        tracer.signal(signal.SIGINT)
        time.sleep(0.2)
        assert tracer.proc.poll() is None, "one signal only asks to stop"
        tracer.signal(signal.SIGINT)
        rc = tracer.wait(timeout=10)
    finally:
        wl.kill()
    assert rc == 130
    assert "STUCK" in tracer.stdout and "EXIT RAN" in tracer.stdout
    assert not held & loaded_program_ids()
