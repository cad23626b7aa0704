"""Nothing is lost silently at a stop (issue #9): for every way a run can stop, with a slow
handler that cannot keep up, delivered + reported lost == the events the workload made.

The workload makes all its calls before the stop (it is the ground truth: L calls, each one
a sys_enter_getppid of its pid). "reported lost" is what stderr's perf-prof loss lines say.
Each way runs several times in a row: one miscount in any run fails it.
"""
from __future__ import annotations

import re
import signal
import time

import pytest

from runner import Tracer, Workload, write_script

RUNS = 3
L = 200_000

SLOW = '''
import time
n = 0
def syscalls__sys_enter_getppid(event):
    global n
    n += 1
    t = time.perf_counter()
    while time.perf_counter() - t < 50e-6:    # a handler slower than the events come
        pass
def __exit__():
    print("DELIVERED", n, flush=True)
'''


def delivered(tracer: Tracer) -> int:
    m = re.search(r"DELIVERED (\d+)", tracer.stdout)
    assert m, tracer.stdout + tracer.stderr
    return int(m.group(1))


def reported_lost(tracer: Tracer) -> int:
    return sum(int(x) for x in re.findall(r"python: lost (\d+) events", tracer.stderr))


def stopped_run(tmp_path, workload_bin, how: str, mmap_pages: int) -> tuple[int, Tracer, int]:
    """Trace L calls of a workload with SLOW, stop the run `how`; (rc, tracer, exit-N)."""
    wl = Workload(workload_bin, "getppid", str(L))
    script = write_script(tmp_path, SLOW)
    extra = ["-N", "5000"] if how == "-N" else []
    tracer = Tracer(["-e", "syscalls:sys_enter_getppid", "-p", str(wl.pid), "-m", str(mmap_pages),
                     *extra, str(script)])
    try:
        tracer.wait_attached()
        assert wl.go()[0] == "done"            # every call made: the rings hold what they hold
        if how in ("SIGINT", "SIGTERM"):
            tracer.signal(getattr(signal, how))
        elif how == "double SIGINT":
            tracer.signal(signal.SIGINT)
            time.sleep(0.3)                    # the final drain is under way (seconds of it)
            tracer.signal(signal.SIGINT)
        elif how == "SIGINT during the final drain":
            wl.finish()                        # -p exited: the run stops by itself...
            time.sleep(0.5)
            tracer.signal(signal.SIGINT)       # ...and a first signal must not cut its drain
        if how != "SIGINT during the final drain":
            wl.finish()
        rc = tracer.wait(timeout=120)
    finally:
        wl.kill()
        if tracer.proc.poll() is None:
            tracer.proc.kill()
    return rc, tracer, 5000


@pytest.mark.parametrize("how,mmap_pages,rc_expected", [
    ("end of input", 16, 0),
    ("SIGINT", 16, 0),
    ("SIGTERM", 16, 0),
    ("SIGINT during the final drain", 512, 0),
    ("double SIGINT", 512, 130),
])
def test_delivered_plus_lost_is_what_happened(tmp_path, workload_bin, how, mmap_pages, rc_expected):
    for run in range(RUNS):
        rc, tracer, _ = stopped_run(tmp_path, workload_bin, how, mmap_pages)
        where = f"{how}, run {run + 1} of {RUNS}:\n{tracer.stderr}"
        assert rc == rc_expected, where
        d, lost = delivered(tracer), reported_lost(tracer)
        assert d + lost == L, where
        assert f"{d} events delivered, {lost} lost" in tracer.stderr, where
        if how == "double SIGINT":
            skipped = re.search(r"interrupted twice: (\d+) records not delivered", tracer.stderr)
            assert skipped and int(skipped.group(1)) > 0, where
        if how == "SIGINT during the final drain":
            # the first signal changed nothing: the whole ring was delivered
            assert d > 100_000 // 56 and "interrupted twice" not in tracer.stderr, where


def test_exit_after_n_delivers_exactly_n(tmp_path, workload_bin):
    for run in range(RUNS):
        rc, tracer, n = stopped_run(tmp_path, workload_bin, "-N", 512)
        assert rc == 0, tracer.stderr
        assert delivered(tracer) == n, f"run {run + 1}: {tracer.stdout}"
