"""The perf buffer of BPF sources (``--perf-buffer``, and kernels without BPF ring buffers):
one PERF_COUNT_SW_BPF_OUTPUT perf event per online CPU, opened and mapped by us, each put in
the program's perf event array (``ep_ring``, bpf/ring_perf.h) at its CPU's index.

bpf_perf_event_output() writes only into an event that is enabled on the CPU it runs on, so
the events are opened enabled; they count nothing, and the run's gate keeps the programs
from writing before the start. Their rings are read by the C perf ring reader
(PERF_RING_BPF_OUTPUT: each sample's RAW member is an ep_sample record).
"""
from __future__ import annotations

import ctypes
import os

from ebpfprof import _ring
from ebpfprof.errors import KernelError
from ebpfprof.kernel import perf_abi
from ebpfprof.resolve.common import online_cpus

__all__ = ["PerfBuffer"]

# The reader is woken once a ring is this full (a fraction of it); the timed drain reads the rest.
_WAKEUP_SHARE = 4


class PerfBuffer:
    """The per-CPU perf rings one BPF program writes to."""

    def __init__(self, pages: int) -> None:
        self.pages = pages
        self._fds: dict[int, int] = {}         # cpu -> BPF output event
        self._rings: list[int] = []            # their indexes in the reader
        self._reader = None

    def open(self) -> None:
        wakeup = self.pages * os.sysconf("SC_PAGE_SIZE") // _WAKEUP_SHARE
        for cpu in online_cpus():
            attr = perf_abi.PerfEventAttr(type=perf_abi.PERF_TYPE_SOFTWARE,
                                          config=perf_abi.PERF_COUNT_SW_BPF_OUTPUT,
                                          sample_period=1, sample_type=perf_abi.Sample.RAW,
                                          flags=perf_abi.Flag.WATERMARK, wakeup_events=wakeup)
            try:
                self._fds[cpu] = perf_abi.open_event(attr, -1, cpu)
            except OSError as e:
                self.close()
                raise KernelError(f"cannot open the perf buffer's event on CPU {cpu}: "
                                  f"{os.strerror(e.errno)}",
                                  hint="run as root, or with CAP_PERFMON; or leave out --perf-buffer") from None

    def fill(self, table) -> None:
        """Put each CPU's event in the program's perf event array."""
        for cpu, fd in self._fds.items():
            table[ctypes.c_int(cpu)] = ctypes.c_int(fd)

    def add_rings(self, reader) -> None:
        self._reader = reader
        self._rings = [reader.add_perf_ring(fd, self.pages, _ring.PERF_RING_BPF_OUTPUT, 0, cpu)
                       for cpu, fd in self._fds.items()]

    @property
    def fds(self) -> list[int]:
        return list(self._fds.values())

    def corrupt(self) -> int:
        """Records the reader could not decode: written, and not delivered."""
        if self._reader is None:
            return 0
        return sum(self._reader.perf_ring_stats(i).get("corrupt", 0) for i in self._rings)

    def close(self) -> None:
        fds, self._fds = self._fds, {}
        self._rings = []
        for fd in fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
