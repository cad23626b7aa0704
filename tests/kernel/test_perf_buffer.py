"""--perf-buffer (issue #10 item 6): BPF sources write to per-CPU perf rings (one
PERF_COUNT_SW_BPF_OUTPUT event per CPU, opened and mapped by ebpfprof) instead of the BPF ring
buffer. Same events, same field values, exact loss accounting.

The ring-dependent kernel suites also run whole in this mode: `make test` runs them a second
time with EBPFPROF_PERF_BUFFER=1 (the environment form of --perf-buffer).
"""
from __future__ import annotations

import re

import pytest

from ebpfprof.kernel.features import bpf_ringbuf_supported
from ebpfprof.sources.bpf import perf_buffer_reason
from runner import Tracer, Workload, trace_workload, write_script

MODES = {"ring buffer": [], "perf buffer": ["--perf-buffer"]}

# Every event's class and the fields both rings must carry the same; the fixed-size path
# (getppid), the scratch path (openat with a stack) and a wildcard's shared function (get*).
RECORDER = '''
from collections import Counter
seen = Counter()
def syscalls__sys_enter_getppid(event):
    seen[("getppid", event.__syscall_nr, event._pid == event._tid)] += 1
def syscalls__sys_enter_openat(event):
    seen[("openat", event.flags, len(event._callchain) > 2)] += 1
def __sample__(event):
    seen[(event._event, "other")] += 1
def __exit__():
    for key, n in sorted(seen.items(), key=repr):
        print("SEEN", repr(key), n)
'''


def seen(stdout: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^SEEN (.*) (\d+)$", stdout, re.M)}


def ring_line(tracer: Tracer) -> str:
    m = re.search(r"^ebpfprof: attached .*$", tracer.stderr, re.M)
    assert m, tracer.stderr
    return m.group(0)


def test_this_kernel_has_bpf_ring_buffers():
    """The detection is real: this 6.18 kernel has them, so the ring buffer is the default."""
    assert bpf_ringbuf_supported() is True
    assert perf_buffer_reason(False, True) == ""
    assert perf_buffer_reason(True, True) == "--perf-buffer"
    assert "no BPF ring buffer" in perf_buffer_reason(False, False)


def test_both_rings_deliver_the_same_events(tmp_path, workload_bin):
    """A fixed-size tracepoint and one with a callchain (the scratch path), in both modes:
    the same counts and field values, nothing lost, and -v says which ring was used."""
    k = 3000
    script = write_script(tmp_path, RECORDER)
    results = {}
    for mode in sorted(MODES):
        for what, cmd in (("getppid", ("getppid", str(k))), ("openat", ("openat", str(k), "/dev/null"))):
            wl = Workload(workload_bin, *cmd)
            tracer = trace_workload(wl, ["-e", "syscalls:sys_enter_getppid,syscalls:sys_enter_openat//stack/",
                                         "-p", str(wl.pid), *MODES[mode], str(script)])
            results[mode, what] = seen(tracer.stdout)
            line = ring_line(tracer)
            assert ("per-CPU perf rings" in line) == (mode == "perf buffer"), line
            assert re.search(r"\d+ events delivered, 0 lost", tracer.stderr), tracer.stderr
        # sys_enter_getppid is syscall 110 on x86-64; every call on the main thread
        assert results[mode, "getppid"] == {"('getppid', 110, True)": k}, results
        # openat(AT_FDCWD, path, O_RDONLY): flags 0, each with its kernel callchain
        assert results[mode, "openat"].get("('openat', 0, True)", 0) >= k, results
    assert results["perf buffer", "openat"] == results["ring buffer", "openat"], results


def test_a_wildcard_shared_function_writes_to_perf_rings(tmp_path, workload_bin):
    """syscalls:sys_enter_get* shares one function (bpf/tracepoint_shared.c): each record is
    submitted at its own size and decoded as its tracepoint's."""
    k = 2000
    counts = {}
    for mode in sorted(MODES):
        wl = Workload(workload_bin, "getppid", str(k))
        script = write_script(tmp_path, RECORDER)
        tracer = trace_workload(wl, ["-e", "syscalls:sys_enter_get*", "-p", str(wl.pid), *MODES[mode], str(script)])
        counts[mode] = seen(tracer.stdout)
        assert counts[mode].get("('getppid', 110, True)") == k, (mode, counts[mode], tracer.stderr)
    assert counts["perf buffer"] == counts["ring buffer"]


SLOW = '''
import time
n = 0
lost = []
def syscalls__sys_enter_getppid(event):
    global n
    n += 1
    t = time.perf_counter()
    while time.perf_counter() - t < 50e-6:
        pass
def __lost__(start=None, end=None):
    lost.append((start, end))
def __exit__():
    print("DELIVERED", n, "LOSTCALLS", len(lost), "BADBOUNDS", sum(1 for s, e in lost if s is not None and s > e))
'''


@pytest.mark.parametrize("order", [False, True], ids=["unordered", "--order"])
def test_tiny_perf_rings_count_every_loss(tmp_path, workload_bin, order):
    """-m 1 (one page per CPU) under a slow handler: many records lost, every one reported;
    delivered + lost == the calls made, run after run."""
    calls = 50_000
    for run in range(3):
        wl = Workload(workload_bin, "getppid", str(calls))
        script = write_script(tmp_path, SLOW)
        tracer = trace_workload(wl, ["-e", "syscalls:sys_enter_getppid", "-p", str(wl.pid), "-m", "1",
                                     "--perf-buffer", *(["--order"] if order else []), str(script)])
        where = f"run {run + 1}:\n{tracer.stderr}"
        m = re.search(r"DELIVERED (\d+) LOSTCALLS (\d+) BADBOUNDS (\d+)", tracer.stdout)
        assert m, tracer.stdout + where
        delivered, lost_calls, bad = map(int, m.groups())
        lost = sum(int(x) for x in re.findall(r"python: lost (\d+) events", tracer.stderr))
        assert lost > 0 and lost_calls > 0, where
        assert delivered + lost == calls, where
        assert bad == 0, where
        assert "perf buffer record(s) were not as" not in tracer.stderr, where
