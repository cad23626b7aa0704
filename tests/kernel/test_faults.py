"""Fault cases (issue #9 §2, §8): signals from the first milliseconds to the last, SIGKILL of
ebpfprof, the -p target killed. Each: the right exit status, the right callbacks, nothing left
attached in the kernel."""
from __future__ import annotations

import signal
import subprocess
import time

import pytest

from bpfobjs import loaded_program_ids, program_ids_of
from runner import Tracer, Workload, ebpfprof_cmd, write_script

SCRIPT = '''
import time
def __init__():
    print("INIT", flush=True)
def __sample__(event):
    pass
def __print_stat__(indent):
    print("STATS", flush=True)
def __exit__():
    print("EXIT", flush=True)
    time.sleep(float(__import__("os").environ.get("EXIT_SLEEP", "0")))
    print("EXIT DONE", flush=True)
'''


def handlers_installed(proc: subprocess.Popen, timeout: float = 10) -> float:
    """Wait until the process catches SIGUSR2 (ebpfprof's first act, before anything slow);
    returns how long that took from here."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                caught = int(next(l for l in f if l.startswith("SigCgt:")).split()[1], 16)
        except (OSError, StopIteration):
            caught = 0
        if caught & (1 << (signal.SIGUSR2 - 1)):
            return time.monotonic() - start
        time.sleep(0.001)
    pytest.fail("ebpfprof never installed its signal handlers")


def run_signalled(tmp_path, sig: int, delay: float, env: dict | None = None) -> subprocess.CompletedProcess:
    script = write_script(tmp_path, SCRIPT)
    proc = subprocess.Popen(ebpfprof_cmd("python", "-q", "-e", "syscalls:sys_enter_getppid", str(script)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**__import__("os").environ, **(env or {})})
    handlers_installed(proc)
    time.sleep(delay)
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"still running 30 s after {signal.Signals(sig).name} at {delay} s:\n{out}{err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


# From the moment the handlers are installed (the first thing ebpfprof's code does, ~25 ms
# after exec here: before that the interpreter itself is starting), through loading the
# script, compiling and attaching.
@pytest.mark.parametrize("delay", [0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.45])
def test_a_stop_during_start_up_stops_cleanly(tmp_path, delay):
    r = run_signalled(tmp_path, signal.SIGINT, delay)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr                    # no traceback, no blank line
    # __exit__ runs exactly when __init__ ran
    assert ("INIT" in r.stdout) == ("EXIT DONE" in r.stdout), r.stdout


@pytest.mark.parametrize("delay", [0, 0.02, 0.05, 0.1, 0.2, 0.3])
def test_sigusr2_during_start_up_never_kills(tmp_path, delay):
    script = write_script(tmp_path, SCRIPT)
    proc = subprocess.Popen(ebpfprof_cmd("python", "-q", "-e", "syscalls:sys_enter_getppid", str(script)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    handlers_installed(proc)
    time.sleep(delay)
    proc.send_signal(signal.SIGUSR2)
    first = proc.stdout.readline()
    while first.startswith("Loaded module"):
        first = proc.stdout.readline()
    assert first == "INIT\n", first + proc.stderr.read()
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "STATS" in out and "EXIT DONE" in out


def test_signals_during_exit_do_not_kill_it(tmp_path):
    """SIGUSR2 and a first SIGINT while __exit__ runs: it finishes, exit 0."""
    script = write_script(tmp_path, SCRIPT)
    proc = subprocess.Popen(ebpfprof_cmd("python", "-q", "-e", "syscalls:sys_enter_getppid", str(script)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**__import__("os").environ, "EXIT_SLEEP": "1"})
    line = proc.stdout.readline()
    while line and line != "INIT\n":
        line = proc.stdout.readline()
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout.readline() == "EXIT\n"
    proc.send_signal(signal.SIGUSR2)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "EXIT DONE" in out


def test_sigkill_of_ebpfprof_leaves_nothing(tmp_path, workload_bin):
    wl = Workload(workload_bin, "getppid", "1000")
    tracer = Tracer(["-e", "syscalls:sys_enter_getppid,sched:sched_switch", "-p", str(wl.pid),
                     str(write_script(tmp_path, SCRIPT))])
    try:
        tracer.wait_attached()
        held = program_ids_of(tracer.proc.pid)
        assert held, "ebpfprof holds programs while it runs"
        wl.go()
        tracer.proc.kill()
        tracer.proc.wait(timeout=30)
    finally:
        wl.kill()
    deadline = time.monotonic() + 30
    while held & loaded_program_ids() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not held & loaded_program_ids(), "programs outlived a SIGKILLed run"


def test_the_p_target_killed_ends_the_run(tmp_path, workload_bin):
    wl = Workload(workload_bin, "spin", "60000")
    tracer = Tracer(["-e", "syscalls:sys_enter_getppid", "-p", str(wl.pid), str(write_script(tmp_path, SCRIPT))])
    try:
        tracer.wait_attached()
        wl.proc.stdin.write("go\n")
        wl.proc.stdin.flush()
        time.sleep(0.5)
        wl.proc.kill()
        rc = tracer.wait(timeout=30)
    finally:
        wl.kill()
    assert rc == 0, tracer.stderr
    assert "EXIT DONE" in tracer.stdout
    assert "the -p processes exited" in tracer.stderr
