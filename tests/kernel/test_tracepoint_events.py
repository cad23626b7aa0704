"""Real tracepoint events reach the script: exact counts, routing, field values, options."""
from __future__ import annotations

import os
import re
import signal

import pytest

from runner import COUNTER, Tracer, Workload, parse_counts, trace_workload, write_script


def test_exact_count_with_pid(tmp_path, workload_bin):
    """A child makes exactly K getppid() calls; a -p CHILD run sees exactly K events."""
    k = 12345
    wl = Workload(workload_bin, "getppid", str(k))
    script = write_script(tmp_path, COUNTER)
    tracer = trace_workload(wl, ["-e", "syscalls:sys_enter_getppid", "-p", str(wl.pid), str(script)])
    assert parse_counts(tracer.stdout) == {"syscalls:sys_enter_getppid": k}, tracer.stderr


def test_pid_filter_excludes_other_processes(tmp_path, workload_bin):
    """Events of a process not named by -p never arrive."""
    watched = Workload(workload_bin, "getppid", "100")
    other = Workload(workload_bin, "getppid", "5000")
    script = write_script(tmp_path, COUNTER)
    tracer = Tracer(["-e", "syscalls:sys_enter_getppid", "-p", str(watched.pid), str(script)])
    try:
        tracer.wait_attached()
        other.go()
        watched.go()
        other.finish()
        watched.finish()
        assert tracer.wait() == 0, tracer.stderr
    finally:
        watched.kill()
        other.kill()
    assert parse_counts(tracer.stdout) == {"syscalls:sys_enter_getppid": 100}


def test_exit_after_n(tmp_path, workload_bin):
    """-N 50 delivers exactly 50 events, runs __exit__ and stops."""
    wl = Workload(workload_bin, "getppid", "10000")
    script = write_script(tmp_path, COUNTER)
    tracer = Tracer(["-e", "syscalls:sys_enter_getppid", "-p", str(wl.pid), "-N", "50", str(script)])
    try:
        tracer.wait_attached()
        wl.go()
        assert tracer.wait() == 0, tracer.stderr
    finally:
        wl.kill()
    assert parse_counts(tracer.stdout) == {"syscalls:sys_enter_getppid": 50}


def test_alias_routes_two_copies_to_two_handlers(tmp_path, workload_bin):
    k = 300
    wl = Workload(workload_bin, "getppid", str(k))
    script = write_script(tmp_path, '''
a = b = other = 0
events = set()
def syscalls__first(event):
    global a; a += 1; events.add(event._event)
def syscalls__second(event):
    global b; b += 1; events.add(event._event)
def __sample__(event):
    global other; other += 1
def __exit__():
    print("A", a, "B", b, "OTHER", other, "EVENTS", ",".join(sorted(events)))
''')
    sel = "syscalls:sys_enter_getppid//alias=first/,syscalls:sys_enter_getppid//alias=second/"
    tracer = trace_workload(wl, ["-e", sel, "-p", str(wl.pid), str(script)])
    assert f"A {k} B {k} OTHER 0 EVENTS syscalls:first,syscalls:second" in tracer.stdout


def test_field_values_match_the_workload(tmp_path, workload_bin):
    """kill(getpid(), 0): the event's pid/sig args, _pid/_tid, common_pid and comm are the workload's."""
    wl = Workload(workload_bin, "kill", "7", "0")
    script = write_script(tmp_path, '''
seen = []
def syscalls__sys_enter_kill(event):
    seen.append((event._pid, event._tid, event.common_pid, event.pid, event.sig, event._event))
def __exit__():
    print("N", len(seen))
    print("SET", sorted(set(seen)))
''')
    tracer = trace_workload(wl, ["-e", "syscalls:sys_enter_kill", "-p", str(wl.pid), str(script)])
    p = wl.pid
    assert "N 7" in tracer.stdout
    assert f"SET [({p}, {p}, {p}, {p}, 0, 'syscalls:sys_enter_kill')]" in tracer.stdout


def test_data_loc_string_and_comm(tmp_path, workload_bin):
    """sched_process_exec's __data_loc filename, and a char[16] comm, decode as str."""
    script = write_script(tmp_path, '''
import subprocess
def __init__():
    pass
found = []
def sched__sched_process_exec(event):
    if event.filename.endswith("/workload"):
        found.append((event.filename, event.pid, event.old_pid, event._pid))
def __exit__():
    print("FOUND", found)
''')
    tracer = Tracer(["-e", "sched:sched_process_exec", str(script)])
    try:
        tracer.wait_attached()
        wl = Workload(workload_bin, "getppid", "1")
        wl.go()
        wl.finish()
    finally:
        tracer.signal(signal.SIGINT)
        rc = tracer.wait()
    assert rc == 0, tracer.stderr
    m = re.search(r"FOUND \[\('([^']+)', (\d+), (\d+), (\d+)\)\]", tracer.stdout)
    assert m, tracer.stdout + tracer.stderr
    assert m.group(1) == str(workload_bin)
    assert int(m.group(2)) == wl.pid == int(m.group(4))


def test_cpu_restriction(tmp_path, workload_bin):
    """-C 1 with the workload pinned to CPU 0 sees nothing; pinned to CPU 1 sees every call."""
    if os.cpu_count() < 2:
        pytest.skip("needs 2 CPUs")
    import subprocess

    results = {}
    for cpu in (0, 1):
        wl = Workload(workload_bin, "getppid", "1000")
        subprocess.run(["taskset", "-pc", str(cpu), str(wl.pid)], check=True, capture_output=True)
        script = write_script(tmp_path, COUNTER)
        tracer = trace_workload(wl, ["-e", "syscalls:sys_enter_getppid", "-C", "1", "-p", str(wl.pid), str(script)])
        results[cpu] = parse_counts(tracer.stdout).get("syscalls:sys_enter_getppid", 0)
    assert results == {0: 0, 1: 1000}


def test_tid_restriction(tmp_path, workload_bin):
    """-t names a thread: a process's main thread is its pid."""
    wl = Workload(workload_bin, "getppid", "77")
    script = write_script(tmp_path, COUNTER)
    tracer = Tracer(["-e", "syscalls:sys_enter_getppid", "-t", str(wl.pid), str(script)])
    try:
        tracer.wait_attached()
        wl.go()
        wl.finish()
    finally:
        wl.kill()
        tracer.signal(signal.SIGINT)
    assert tracer.wait() == 0
    assert parse_counts(tracer.stdout) == {"syscalls:sys_enter_getppid": 77}


def test_print_layout(tmp_path, workload_bin):
    """event.print() follows SPEC §5: time, comm %16s, tid %6u, flags, [cpu], sec.usec: name: fields."""
    wl = Workload(workload_bin, "kill", "1", "0")
    script = write_script(tmp_path, '''
def syscalls__sys_enter_kill(event):
    event.print()
    event.print(timestamp=False)
''')
    tracer = Tracer(["-e", "syscalls:sys_enter_kill", "-p", str(wl.pid), str(script)])
    try:
        tracer.wait_attached()
        wl.go()
        import time
        time.sleep(0.3)        # the handler prints while the workload (and its comm) exists
        wl.finish()
        assert tracer.wait() == 0, tracer.stderr
    finally:
        wl.kill()
    loaded, *lines = tracer.stdout.splitlines()
    assert loaded == f"Loaded module: {script}" and len(lines) == 2, tracer.stdout
    p = wl.pid
    full = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} +workload +%d [.dX][.Nnp][.HhsZz][.0-9a-f] "
                      r"\[\d{3}\] +\d+\.\d{6}: syscalls:sys_enter_kill: pid: 0x0*%x, sig: 0x0+$" % (p, p))
    assert full.match(lines[0]), lines[0]
    comm_column = lines[0][len("YYYY-MM-DD HH:MM:SS.uuuuuu "):][:16]
    assert comm_column == "%16s" % "workload"
    assert lines[1] == lines[0][len("YYYY-MM-DD HH:MM:SS.uuuuuu "):]


def test_wildcard_expands_to_one_selector_per_tracepoint(tmp_path, workload_bin):
    """syscalls:sys_enter_get*pid matches getpid, getppid, ...: each gets its own handler name."""
    from ebpfprof.kernel.tracefs import list_tracepoints
    import fnmatch

    expected = sorted(n for s, n in list_tracepoints() if s == "syscalls" and fnmatch.fnmatchcase(n, "sys_enter_get*pid"))
    assert "sys_enter_getppid" in expected and len(expected) >= 2
    wl = Workload(workload_bin, "getppid", "40")
    script = write_script(tmp_path, '''
from collections import Counter
seen = Counter()
def syscalls__sys_enter_getppid(event):
    seen["handler:getppid"] += 1
def __sample__(event):
    seen[event._event] += 1
def __exit__():
    print("SEEN", sorted(seen.items()))
''')
    tracer = Tracer(["-e", "syscalls:sys_enter_get*pid", "-p", str(wl.pid), str(script)])
    try:
        tracer.wait_attached()
        assert f"attached {len(expected)} tracepoint(s)" in tracer.stderr
        wl.go()
        wl.finish()
        assert tracer.wait() == 0, tracer.stderr
    finally:
        wl.kill()
    assert "SEEN [('handler:getppid', 40)]" in tracer.stdout
