"""Other perf users keep seeing the events we trace (issue #9 §3).

While ebpfprof traces a tracepoint, a perf counter of someone else on the same tracepoint
(perf stat's kind: PERF_TYPE_TRACEPOINT, counting, on the workload's task) must count every
event. A program that returned 0 would hide the events from it.
"""
from __future__ import annotations

import ctypes
import os
import struct

from runner import COUNTER, Tracer, Workload, parse_counts, write_script

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_NR_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241}[os.uname().machine]


def tracepoint_counter(system: str, name: str, pid: int) -> int:
    """A counting perf event on the tracepoint for one task, enabled: what perf stat opens."""
    with open(f"/sys/kernel/tracing/events/{system}/{name}/id") as f:
        tp_id = int(f.read())
    attr = bytearray(136)
    struct.pack_into("<IIQ", attr, 0, 2, 136, tp_id)          # PERF_TYPE_TRACEPOINT, size, config
    buf = (ctypes.c_char * len(attr)).from_buffer(attr)
    fd = _libc.syscall(_NR_PERF_EVENT_OPEN, buf, pid, -1, -1, 0)
    assert fd >= 0, os.strerror(ctypes.get_errno())
    return fd


def test_a_perf_counter_on_the_traced_tracepoint_counts_every_event(tmp_path, workload_bin):
    k = 100_000
    wl = Workload(workload_bin, "kill", str(k), "0")
    counter = tracepoint_counter("syscalls", "sys_enter_kill", wl.pid)
    try:
        tracer = Tracer(["-e", "syscalls:sys_enter_kill", "-p", str(wl.pid),
                         str(write_script(tmp_path, COUNTER))])
        try:
            tracer.wait_attached()
            assert wl.go()[0] == "done"
            wl.finish()
            assert tracer.wait() == 0, tracer.stderr
        finally:
            wl.kill()
        counted = struct.unpack("<Q", os.read(counter, 8))[0]
    finally:
        os.close(counter)
    assert parse_counts(tracer.stdout) == {"syscalls:sys_enter_kill": k}
    assert counted == k, "another perf user's counter missed events while ebpfprof traced"
