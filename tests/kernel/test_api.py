"""The Python API on live events: exact counts in a with block, handlers, rows, exit_after, and
nothing of the run left attached afterwards (what this process holds: other people's BPF
programs come and go on this machine)."""
from __future__ import annotations

import gc
import signal
import subprocess
import sys

import pytest

from bpfobjs import kernel_fds_of, loaded_program_ids, program_ids_of
from runner import ROOT, Workload

import ebpfprof
from ebpfprof.errors import SelectorError, UsageError

GETPPID = "syscalls:sys_enter_getppid"


def test_k_events_in_a_with_block_then_nothing_attached(workload_bin):
    k = 3000
    wl = Workload(workload_bin, "getppid", str(k))
    before, sigint = kernel_fds_of(), signal.getsignal(signal.SIGINT)
    try:
        with ebpfprof.trace(GETPPID, pids=[wl.pid]) as events:
            held = program_ids_of()
            assert held and kernel_fds_of() != before
            assert signal.getsignal(signal.SIGINT) is sigint      # the host's Ctrl-C stays its own
            wl.go()
            got = list(events.take(k, timeout=30))
            more = list(events.take(timeout=0.3))                 # nothing beyond the K calls
    finally:
        wl.finish()
        wl.kill()
    assert (len(got), more) == (k, [])
    assert kernel_fds_of() == before
    assert not held & loaded_program_ids(), "a program of the trace outlived its with block"
    assert signal.getsignal(signal.SIGINT) is sigint
    # Events stay valid after the loop, and after the detach
    assert all(e._pid == wl.pid and e._event == GETPPID and e.__syscall_nr == 110 for e in got)
    assert len({id(e) for e in got}) == k
    assert [e._time for e in got] == sorted(e._time for e in got)
    assert (events.delivered, events.lost) == (k, 0)


def test_an_exception_in_the_block_still_detaches(workload_bin):
    wl = Workload(workload_bin, "getppid", "100")
    before = kernel_fds_of()
    try:
        with pytest.raises(RuntimeError, match="boom"):
            with ebpfprof.trace(GETPPID, pids=str(wl.pid)) as events:
                held = program_ids_of()
                wl.go()
                for _ in events.take(10, timeout=10):
                    pass
                raise RuntimeError("boom")
    finally:
        wl.finish()
        wl.kill()
    assert kernel_fds_of() == before
    assert not held & loaded_program_ids()
    # closed: a new trace may start
    with ebpfprof.trace(GETPPID, pids=[1]):
        pass


def test_handlers_and_callbacks(workload_bin):
    k = 500
    wl = Workload(workload_bin, "getppid", str(k))
    seen, calls = [], []
    handlers = {"syscalls:sys_enter_getppid": seen.append, "__init__": lambda: calls.append("init"),
                "__exit__": lambda: calls.append("exit")}
    try:
        with ebpfprof.trace(GETPPID, "syscalls:sys_exit_getppid", pids=[wl.pid], handlers=handlers) as events:
            assert calls == ["init"]
            wl.go()
            wl.finish()
            events.run(timeout=30)           # until the -p process exits
            exits = list(events.take())      # the selector without a handler: kept for take()
    finally:
        wl.kill()
    assert calls == ["init", "exit"]
    assert len(seen) == k and len(exits) == k
    assert {e._event for e in exits} == {"syscalls:sys_exit_getppid"}


def test_exit_after_ends_take_early(workload_bin):
    wl = Workload(workload_bin, "getppid", "10000")
    try:
        with ebpfprof.trace(GETPPID, pids=[wl.pid], exit_after=5) as events:
            wl.go()
            got = list(events.take(timeout=30))
    finally:
        wl.finish()
        wl.kill()
    assert len(got) == 5 and events.delivered == 5


def test_rows_and_collect_make_a_table(workload_bin):
    k = 50
    wl = Workload(workload_bin, "getppid", str(k))
    try:
        with ebpfprof.trace(GETPPID, pids=[wl.pid]) as events:
            wl.go()
            rows = events.rows(k, timeout=30)
    finally:
        wl.finish()
        wl.kill()
    assert len(rows) == k and all(type(r) is dict for r in rows)
    assert {r["_pid"] for r in rows} == {wl.pid} and {r["__syscall_nr"] for r in rows} == {110}
    try:
        import pandas
    except ImportError:
        return
    frame = pandas.DataFrame(rows)
    assert len(frame) == k and (frame["_pid"] == wl.pid).all()


def test_collect_detaches(workload_bin):
    wl = Workload(workload_bin, "getppid", "20")
    before = kernel_fds_of()
    wl.go()       # done before the trace: the -p process then exits, which ends collect()
    wl.finish()
    rows = ebpfprof.collect("sched:sched_process_exec", pids=[1], timeout=0.2)
    assert rows == [] and kernel_fds_of() == before
    wl.kill()


def test_a_dropped_trace_detaches_and_one_trace_at_a_time():
    before = kernel_fds_of()
    t = ebpfprof.trace(GETPPID, pids=[1]).open()
    assert kernel_fds_of() != before
    with pytest.raises(UsageError, match="another trace is open"):
        ebpfprof.trace(GETPPID, pids=[1]).open()
    del t
    gc.collect()
    assert kernel_fds_of() == before
    ebpfprof.trace(GETPPID, pids=[1]).open().close()
    assert kernel_fds_of() == before


def test_a_bad_selector_raises_before_anything_is_attached():
    before = kernel_fds_of()
    with pytest.raises(SelectorError, match="unknown tracepoint 'sched:sched_wakup'"):
        with ebpfprof.trace("sched:sched_wakup"):
            pass
    assert kernel_fds_of() == before


def test_interpreter_exit_detaches_a_trace_never_closed(tmp_path):
    """A program that opens a trace and exits: the finalizer closes it at exit. The check runs
    in an atexit function registered first, so it runs last (atexit is last-in first-out)."""
    script = tmp_path / "leave_open.py"
    script.write_text(f"""
import atexit, sys
sys.path.insert(0, {str(ROOT / 'tests' / 'kernel')!r})
from bpfobjs import kernel_fds_of
before = kernel_fds_of()
atexit.register(lambda: print("at exit, fds back to before:", kernel_fds_of() == before, flush=True))
import ebpfprof
t = ebpfprof.trace('syscalls:sys_enter_getppid', pids=[1]).open()
print("while open:", kernel_fds_of() != before, flush=True)
""")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "while open: True\nat exit, fds back to before: True\n"
    assert proc.stderr == ""
