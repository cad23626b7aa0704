"""perf-prof's conventions (issue #9, part 5), on live events: what goes to stdout and stderr,
and the comm column of event.print() for tasks that are gone by the time it prints.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter

from runner import COUNTER, Tracer, parse_counts, run_ebpfprof, write_script

PRINT_NOTHING = '''
n = 0
def __sample__(event):
    global n
    n += 1
def __exit__():
    print(f"EVENTS {n}")
'''


def test_a_normal_run_writes_nothing_on_stderr(tmp_path):
    """Harnesses that fail on any stderr line (perf-prof's own tests do) pass a clean run."""
    script = write_script(tmp_path, PRINT_NOTHING)
    proc = run_ebpfprof("python", "-N", "20", "-e", "sched:sched_switch", str(script))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout == f"Loaded module: {script}\nEVENTS 20\n"


def test_verbose_still_tells_about_the_headers(tmp_path):
    from ebpfprof.bcc_loader import headers_warning

    script = write_script(tmp_path, PRINT_NOTHING)
    proc = run_ebpfprof("python", "-v", "-N", "5", "-e", "sched:sched_switch", str(script))
    assert proc.returncode == 0, proc.stderr
    warning = headers_warning()
    if warning is not None:                  # only machines without the kernel's own headers
        assert f"ebpfprof: {warning}\n" in proc.stderr
    assert "attached 1 tracepoint(s): sched:sched_switch" in proc.stderr


def test_quiet_drops_the_loaded_module_line(tmp_path):
    script = write_script(tmp_path, PRINT_NOTHING)
    proc = run_ebpfprof("python", "-q", "-N", "5", "-e", "sched:sched_switch", str(script))
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout, proc.stderr) == ("EVENTS 5\n", "")


def test_loaded_module_names_the_file_of_a_module_name(tmp_path):
    script = write_script(tmp_path, PRINT_NOTHING, "by_name_mod.py")
    proc = run_ebpfprof("python", "-N", "5", "-e", "sched:sched_switch", "by_name_mod", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == f"Loaded module: {script}"


KEEP_AND_PRINT_LATER = '''
kept = []
def sched__sched_process_exec(event):
    if event.filename == "/bin/true":
        kept.append(event)
def __interval__():
    # printed a while after the event: every /bin/true has exited and been reaped by now
    while kept:
        kept.pop(0).print(timestamp=False)
'''


def test_print_names_a_task_that_has_exited_since(tmp_path):
    """20 runs of /bin/true, printed after they have gone: comm 'true', never '<...>' (the
    comm map fed by exec/fork/rename; /proc no longer has them)."""
    script = write_script(tmp_path, KEEP_AND_PRINT_LATER)
    tracer = Tracer(["-i", "300", "-e", "sched:sched_process_exec", str(script)])
    try:
        tracer.wait_attached()
        for _ in range(20):
            subprocess.run(["/bin/true"], check=True)
        time.sleep(1.0)                      # a few intervals: every kept event is printed
        tracer.signal(signal.SIGINT)
        assert tracer.wait() == 0, tracer.stderr
    finally:
        if tracer.proc.poll() is None:
            tracer.proc.kill()
    lines = [l for l in tracer.stdout.splitlines() if "filename=/bin/true" in l]
    assert len(lines) >= 20, tracer.stdout             # other jobs may run /bin/true too
    comms = Counter(l[:16].strip() for l in lines)
    assert comms == {"true": len(lines)}, tracer.stdout


def test_print_follows_a_rename(tmp_path):
    """A thread that renames itself (prctl PR_SET_NAME) and exits prints under its new name."""
    script = write_script(tmp_path, '''
kept = []
def syscalls__sys_enter_getppid(event):
    kept.append(event)
def __interval__():
    while kept:
        kept.pop(0).print(timestamp=False)
''')
    child = subprocess.Popen([sys.executable, "-c", RENAMED_CHILD], stdin=subprocess.PIPE, text=True)
    tracer = Tracer(["-i", "300", "-e", f"syscalls:sys_enter_getppid/common_pid=={child.pid}/", str(script)])
    try:
        tracer.wait_attached()
        child.communicate("go\n", timeout=10)       # renames itself, calls getppid 3 times, exits
        time.sleep(1.0)
        tracer.signal(signal.SIGINT)
        assert tracer.wait() == 0, tracer.stderr
    finally:
        child.kill()
        if tracer.proc.poll() is None:
            tracer.proc.kill()
    lines = [l for l in tracer.stdout.splitlines() if "sys_enter_getppid" in l]
    assert [l[:16] for l in lines] == ["%16s" % "ebpfprof-renamd"] * 3, tracer.stdout


RENAMED_CHILD = '''
import ctypes, os, sys
sys.stdin.readline()
ctypes.CDLL(None).prctl(15, b"ebpfprof-renamd", 0, 0, 0)    # PR_SET_NAME
for _ in range(3):
    os.getppid()
'''


FORKING_CHILD = '''
import ctypes, os, sys
sys.stdin.readline()
ctypes.CDLL(None).prctl(15, b"ebpfprof-forkr", 0, 0, 0)     # PR_SET_NAME, before the forks
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        os.getppid()
        os._exit(0)
    os.waitpid(pid, 0)
    print(pid, flush=True)
'''


def test_print_names_a_forked_child_that_has_exited(tmp_path):
    """Children that never exec and are gone when printed: named by the fork entry."""
    pids_file = tmp_path / "pids"
    script = write_script(tmp_path, f'''
kept = []
def syscalls__sys_enter_getppid(event):
    kept.append(event)
def __interval__():
    pids = open({str(pids_file)!r}).read().split()
    for event in kept:
        if str(event._pid) in pids:
            event.print(timestamp=False)
    kept.clear()
''')
    pids_file.write_text("")
    child = subprocess.Popen([sys.executable, "-c", FORKING_CHILD], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    tracer = Tracer(["-i", "500", "-e", "syscalls:sys_enter_getppid", str(script)])
    try:
        tracer.wait_attached()
        out, _ = child.communicate("go\n", timeout=10)
        pids_file.write_text(out)
        time.sleep(1.2)
        tracer.signal(signal.SIGINT)
        assert tracer.wait() == 0, tracer.stderr
    finally:
        child.kill()
        if tracer.proc.poll() is None:
            tracer.proc.kill()
    assert len(out.split()) == 3
    lines = [l for l in tracer.stdout.splitlines() if "sys_enter_getppid" in l]
    assert [l[:16] for l in lines] == ["%16s" % "ebpfprof-forkr"] * 3, tracer.stdout


THREADED_CHILD = '''
import os, sys, threading
go = threading.Event()
def worker():
    print(threading.get_native_id(), flush=True)
    go.wait()
    for _ in range(50):
        os.getppid()
t = threading.Thread(target=worker)
t.start()
sys.stdin.readline()
go.set()
t.join()
for _ in range(7):
    os.getppid()              # the main thread's: the same process
'''


def test_p_with_a_thread_id_traces_its_process(tmp_path):
    """-p takes processes (perf's -p TID follows the whole thread group): the thread's events and
    its process's other threads' arrive; -v says which process it took."""
    script = write_script(tmp_path, COUNTER)
    child = subprocess.Popen([sys.executable, "-c", THREADED_CHILD], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        tid = int(child.stdout.readline())
        assert tid != child.pid
        tracer = Tracer(["-e", "syscalls:sys_enter_getppid", "-p", str(tid), str(script)])
        tracer.wait_attached()
        child.stdin.write("go\n")
        child.stdin.close()
        child.wait(timeout=10)
        assert tracer.wait() == 0, tracer.stderr        # -p: ends with the process
    finally:
        child.kill()
    assert parse_counts(tracer.stdout) == {"syscalls:sys_enter_getppid": 57}, tracer.stdout + tracer.stderr
    assert (f"ebpfprof: -p {tid}: thread {tid} is of process {child.pid}: tracing process {child.pid} "
            f"(-t {tid} for the thread alone)\n") in tracer.stderr


def test_the_same_selector_twice_is_said_on_stderr(tmp_path):
    script = write_script(tmp_path, PRINT_NOTHING)
    proc = run_ebpfprof("python", "-N", "10", "-e", "sched:sched_switch,sched:sched_switch", str(script))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ("ebpfprof: -e selects sched:sched_switch twice with the same filter and alias: each "
                           "of its events is delivered twice (give each an alias=, or drop one)\n")
    proc = run_ebpfprof("python", "-N", "10", "-e", "sched:sched_switch//alias=a/,sched:sched_switch//alias=b/",
                        str(script))
    assert (proc.returncode, proc.stderr) == (0, "")
