"""The perf source: every profiler selector of a run (profile, page-faults, breakpoint) as perf
events opened with perf_event_open(2), read through their mmap rings by the C reader.

Per profiler selector and CPU there is one ring: the first event opened on that CPU owns it,
the others (more breakpoints; more threads with -p/-t) send their samples to it
(PERF_EVENT_IOC_SET_OUTPUT, once the reader has mapped it: the kernel refuses it before). Events are opened disabled and enabled by ``start()``; with -p they
are inherited by the threads and children the processes create later.

Losses: the kernel writes a PERF_RECORD_LOST into a ring once there is room again, so losses at
the very end of a run would never be reported; each event's own count of lost samples
(PERF_FORMAT_LOST, Linux 6.0+) is read at the end, and what no record reported is reported then.
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from ebpfprof import _ring
from ebpfprof.errors import EbpfprofError, KernelError, PermissionProblem, UsageError
from ebpfprof.options import RunConfig
from ebpfprof.profilers.base import READ_FORMAT, PerfEventPlan
from ebpfprof.resolve.common import online_cpus
from ebpfprof.kernel import perf_abi
from ebpfprof.sources.base import Source

__all__ = ["PerfSource", "ring_pages"]

# The reader is woken once a ring is this full (a fraction of it), never per sample: the run
# loop's timed drain (every 20 ms) reads what comes slower than that.
_WAKEUP_SHARE = 4
# Rings are at most this many pages per CPU (4 MiB): samples are small, a profiler's rate low
_MAX_PAGES = 1024


def ring_pages(config: RunConfig, own: int | None) -> int:
    """Data pages per CPU of a profiler's ring: its own -m, else the run's, capped."""
    pages = own if own is not None else min(config.mmap_pages, _MAX_PAGES)
    return max(1, 1 << (pages.bit_length() - 1))


def _threads(pid: int) -> list[int]:
    try:
        return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return []


@dataclass
class _Ring:
    fd: int            # the event whose mmap this is
    pages: int
    cls: int           # the class of its samples
    cpu: int
    layout: tuple
    index: int = -1    # in the reader


class PerfSource(Source):
    """The run's profiler selectors: their perf events, one ring per selector and CPU."""

    kind = "perf"

    def __init__(self, config: RunConfig, specs: list) -> None:
        super().__init__(config, specs)
        self._fds: list[int] = []
        self._rings: list[_Ring] = []
        self._redirect: list[tuple[int, int]] = []     # (event fd, fd of the ring it writes to)
        self._filters: list = []
        self._reader = None
        self._stopped = False
        self._opened: list[str] = []       # for describe()
        self._python = None                # the run's CPython processes, with Python stacks

    # -- open ------------------------------------------------------------------------------
    def open(self) -> None:
        try:
            for spec in self.specs:
                self._open_spec(spec)
        except BaseException:
            self.close()
            raise

    def _targets(self) -> tuple[list[int], bool]:
        """Threads to open per-task events on ([-1]: every task), and whether children inherit."""
        if self.config.pids:
            return [t for p in self.config.pids for t in _threads(p)] + list(self.config.tids or ()), True
        if self.config.tids:
            return list(self.config.tids), False
        return [-1], False

    def _open_spec(self, spec) -> None:
        plan = spec.plan
        cpus = spec.cpus if spec.cpus is not None else online_cpus()
        pages = ring_pages(self.config, plan.mmap_pages)
        wakeup = pages * os.sysconf("SC_PAGE_SIZE") // _WAKEUP_SHARE
        prog = self._load_filter(spec)
        targets, inherit = self._targets()
        ring_of_cpu: dict[int, int] = {}
        opened: set[tuple[int, int, int]] = set()
        while True:
            fresh = [(e, t, c) for e, _ in enumerate(plan.events) for t in targets for c in cpus
                     if (e, t, c) not in opened]
            if not fresh:
                break
            for e, tid, cpu in fresh:
                opened.add((e, tid, cpu))
                fd = self._open_one(spec, plan.events[e], tid, cpu, wakeup, inherit)
                if fd is None:
                    continue
                if cpu in ring_of_cpu:
                    # redirected once the owner's ring is mapped (add_rings): before that
                    # the kernel has no ring to send it to, and refuses
                    self._redirect.append((fd, ring_of_cpu[cpu]))
                else:
                    ring_of_cpu[cpu] = fd
                    self._rings.append(_Ring(fd, pages, spec.index, cpu, plan.samples.layout))
                if prog is not None:
                    prog.attach(fd)
            if self.config.pids:     # threads created meanwhile: open theirs too, until none is new
                targets = [t for p in self.config.pids for t in _threads(p)] + list(self.config.tids or ())
        if not ring_of_cpu:
            raise UsageError(f"{spec.selector.text}: the -p/-t tasks exited before their events could be opened")
        self._opened.append(f"{spec.event.event_name} ({plan.title_note}) on {len(cpus)} CPU(s)"
                            + (f", {len(set(t for _, t, _ in opened))} thread(s)" if targets != [-1] else ""))

    def _load_filter(self, spec):
        if spec.filter_program is None:
            return None
        from ebpfprof.sources.sample_filter import LoadedSampleFilter

        prog = LoadedSampleFilter(spec.filter_program, spec.filter_function, spec.selector.text,
                                  has_filter=spec.selector.filter is not None)
        self._filters.append(prog)
        if spec.python_stack:
            from ebpfprof.symbols.python import run_python_processes

            python = run_python_processes(self.config)
            python.fill(prog.table("ep_py_procs"))
            python.add_side_ring(prog.table("ep_py_ring"), prog.consume)
            self._python = python
        return prog

    def _open_one(self, spec, event: PerfEventPlan, tid: int, cpu: int, wakeup: int, inherit: bool) -> int | None:
        attr = event.attr(spec.plan.samples, wakeup_bytes=wakeup, inherit=inherit, max_stack=spec.max_stack)
        attr.read_format = READ_FORMAT        # read() at the end gives the event's lost samples
        try:
            fd = perf_abi.open_event(attr, tid, cpu)
        except OSError as e:
            if e.errno == errno.ESRCH and tid != -1:
                return None                   # the thread exited meanwhile
            raise self._open_error(spec, event, cpu, e) from None
        self._fds.append(fd)
        return fd

    def _open_error(self, spec, event: PerfEventPlan, cpu: int, e: OSError) -> EbpfprofError:
        what = f"{spec.selector.text}: cannot open {event.label} on CPU {cpu}: {os.strerror(e.errno)}"
        if e.errno in (errno.EACCES, errno.EPERM):
            return PermissionProblem(what, hint="run as root, or with CAP_PERFMON; see "
                                     "/proc/sys/kernel/perf_event_paranoid")
        if e.errno == errno.ENOSPC:
            return KernelError(what, hint="no free debug register: at most 4 breakpoints per CPU, "
                               "and debuggers or other perf users may hold some")
        if e.errno == errno.EMFILE:
            return UsageError(what, hint="too many open files: raise the limit (ulimit -n)")
        if e.errno == errno.ENOENT or e.errno == errno.EOPNOTSUPP:
            return KernelError(what, hint="this kernel or machine has no such event (no PMU in a VM?)")
        if e.errno == errno.EINVAL and event.bp_len:
            if event.bp_addr >= 1 << 63 and event.bp_type == perf_abi.HW_BREAKPOINT_X:
                return KernelError(what, hint="this kernel refuses execution breakpoints on its own text; "
                                   "watch data (:w, :rw), or trace the function with a tracepoint")
            return KernelError(what, hint="the kernel refused this breakpoint (address, length or type)")
        return KernelError(what)

    # -- the run -----------------------------------------------------------------------------
    def add_rings(self, reader) -> None:
        self._reader = reader
        for ring in self._rings:
            ring.index = reader.add_perf_ring(ring.fd, ring.pages, _ring.PERF_RING_SAMPLES, ring.cls,
                                              ring.cpu, ring.layout)
        for fd, ring_fd in self._redirect:
            try:
                perf_abi.set_output(fd, ring_fd)
            except OSError as e:
                raise KernelError(f"cannot send a perf event's samples to its CPU's ring: {e.strerror}",
                                  hint="this is a bug in ebpfprof; please report it with the -e text") from None

    @property
    def wait_fds(self) -> list[int]:
        return [ring.fd for ring in self._rings]

    def start(self) -> None:
        for fd in self._fds:
            perf_abi.enable(fd)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for fd in self._fds:
            try:
                perf_abi.disable(fd)
            except OSError:
                pass

    def pending_lost(self) -> int:
        """Samples the events lost that no PERF_RECORD_LOST reported (after the last drain)."""
        if self._reader is None:
            return 0
        counted = 0
        for fd in self._fds:
            try:
                counted += perf_abi.read_counts(fd, READ_FORMAT).get("lost", 0)
            except OSError:
                pass
        stats = [self._reader.perf_ring_stats(r.index) for r in self._rings if r.index >= 0]
        reported = sum(s["lost_records"] for s in stats)
        # records the reader could not decode (not as perf writes them) were made and not delivered
        corrupt = sum(s.get("corrupt", 0) for s in stats)
        return max(0, counted - reported) + corrupt

    def throttled(self) -> int:
        if self._reader is None:
            return 0
        return sum(self._reader.perf_ring_stats(r.index)["throttled"] for r in self._rings if r.index >= 0)

    def stop_notes(self) -> list[str]:
        throttled: dict[int, int] = {}
        if self._reader is not None:
            for r in self._rings:
                if r.index >= 0:
                    throttled[r.cls] = throttled.get(r.cls, 0) + self._reader.perf_ring_stats(r.index)["throttled"]
        names = {spec.index: spec.event.event_name for spec in self.specs}
        notes = [f"{names.get(cls, cls)}: the kernel throttled its sampling {n} time(s) (too many samples "
                 f"per second: see kernel.perf_event_max_sample_rate; lower -F)"
                 for cls, n in sorted(throttled.items()) if n]
        corrupt = sum(self._reader.perf_ring_stats(r.index).get("corrupt", 0) for r in self._rings
                      if r.index >= 0) if self._reader is not None else 0
        if corrupt:
            notes.append(f"{corrupt} perf ring record(s) were not as perf writes them and were skipped "
                         "(counted lost): please report it")
        for prog in self._filters:
            seen, kept = prog.counts()
            if prog.has_filter:
                notes.append(f"{prog.selector}: its --filter kept {kept} of {seen} samples in the kernel")
            if prog.python_lost():
                notes.append(f"{prog.selector}: {prog.python_lost()} sample(s) got no Python frames: "
                             f"their side ring was full (read _callchain in the handler)")
        return notes

    def describe(self) -> str:
        text = "perf events: " + "; ".join(self._opened)
        return text + ("; " + self._python.describe() if self._python is not None else "")

    def close(self) -> None:
        fds, self._fds = self._fds, []
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._rings = []
        self._redirect = []
        filters, self._filters = self._filters, []
        for prog in filters:
            prog.close()
