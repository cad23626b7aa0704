"""Big wildcards (issue #9 §4): one shared BPF function serves every tracepoint of the
selector, told apart by attach cookies. The same exact counts and field values as one function
per tracepoint, and nothing left in the kernel once the background release is done."""
from __future__ import annotations

import subprocess
import time

from bpfobjs import loaded_program_ids, program_ids_of
from runner import Tracer, Workload, write_script

SCRIPT = '''
from collections import Counter
counts = Counter()
wrong = 0
def syscalls__sys_enter_kill(event):
    global wrong
    counts[event._event] += 1
    if event.pid != event._pid or event.sig != 0 or event.common_pid != event._tid:
        wrong += 1
def __sample__(event):
    counts[event._event] += 1
def __exit__():
    print("KILL", counts["syscalls:sys_enter_kill"], "WRONG", wrong)
    print("EXIT_KILL", counts["syscalls:sys_exit_kill"])
'''


def releasers() -> list[str]:
    """Pids of background release processes (their comm is perf_abi.RELEASER_NAME)."""
    out = subprocess.run(["pgrep", "-x", "ebpfprof-detach"], capture_output=True, text=True).stdout
    return out.split()


def wait_released(held: set[int], timeout: float = 120) -> None:
    """The background release of a big wildcard is done: its programs are unloaded, and its
    perf events (the releasing process exits when they are)."""
    deadline = time.monotonic() + timeout
    while held & loaded_program_ids() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not held & loaded_program_ids(), "programs still loaded after the release"
    while releasers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not releasers(), "the release process is still at work"


def test_syscalls_wildcard_counts_and_fields_are_exact(tmp_path, workload_bin):
    k = 20_000
    wl = Workload(workload_bin, "kill", str(k), "0")
    tracer = Tracer(["-e", "syscalls:*", "-p", str(wl.pid), str(write_script(tmp_path, SCRIPT))])
    try:
        tracer.wait_attached()
        held = program_ids_of(tracer.proc.pid)
        assert wl.go()[0] == "done"
        wl.finish()
        assert tracer.wait() == 0, tracer.stderr
    finally:
        wl.kill()
    wait_released(held)     # the next tests run without 720 attachments still held
    assert f"KILL {k} WRONG 0" in tracer.stdout, tracer.stdout + tracer.stderr
    assert f"EXIT_KILL {k}" in tracer.stdout


def test_syscalls_wildcard_starts_and_stops_fast_and_leaves_nothing(tmp_path, workload_bin):
    wl = Workload(workload_bin, "getppid", "10")
    tracer = Tracer(["-e", "syscalls:*", "-p", str(wl.pid), str(write_script(tmp_path, SCRIPT))])
    try:
        started = time.monotonic()
        tracer.wait_attached()
        attach_s = time.monotonic() - started
        held = program_ids_of(tracer.proc.pid)
        assert held
        wl.go()
        wl.finish()
        stop = time.monotonic()
        assert tracer.wait() == 0, tracer.stderr
        exit_s = time.monotonic() - stop
    finally:
        wl.kill()
    # Generous bounds (a loaded CI machine); bench/ measures the real figures.
    assert attach_s < 10 and exit_s < 10, (attach_s, exit_s)
    deadline = time.monotonic() + 30     # links are closed from several threads: seconds
    while held & loaded_program_ids() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not held & loaded_program_ids(), "programs still loaded 30 s after the exit"
    wait_released(held)
