"""RunConfig: everything the command line decided, validated, frozen."""
from __future__ import annotations

import os
from dataclasses import dataclass

from ebpfprof.errors import UsageError

__all__ = ["RunConfig", "DEFAULT_MMAP_PAGES", "RING_MAX_BYTES", "ring_bytes", "check_mmap_pages",
           "traced_processes", "tgid_of"]

# Ring pages per CPU when -m is not given: 4 MiB per CPU holds ~80 ms of a 1 M events/s stream
# of 56-byte records even if the reader stalls, far beyond the 20 ms timed drain.
DEFAULT_MMAP_PAGES = 1024
# A BPF ring buffer's size is its max_entries: a u32 power of two, so 2 GiB at most (4 GiB does
# not fit; the kernel refuses it with EINVAL).
RING_MAX_BYTES = 1 << 31
# The ring is kernel memory, allocated whole at start: at most this share of MemAvailable.
RING_MEMORY_SHARE = 2


def ring_bytes(pages: int, nr_cpus: int) -> int:
    """-m pages per CPU, as one shared ring: a power of two of bytes."""
    size = pages * 4096 * max(1, nr_cpus)
    return 1 << (size - 1).bit_length()


def _mem_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.3g} {unit}"
    return f"{n} bytes"


def check_mmap_pages(pages: int, nr_cpus: int, mem_available: int | None = -1) -> None:
    """A UsageError when -m PAGES makes a ring the kernel or this machine's memory cannot take,
    naming the largest -m that works. ``mem_available`` -1: read /proc/meminfo."""
    if mem_available == -1:
        mem_available = _mem_available()
    limit, why = RING_MAX_BYTES, f"more than a BPF ring buffer can hold ({_size(RING_MAX_BYTES)})"
    if mem_available is not None and mem_available // RING_MEMORY_SHARE < limit:
        limit = mem_available // RING_MEMORY_SHARE
        why = f"more than half of the memory available ({_size(mem_available)})"
    size = ring_bytes(pages, nr_cpus)
    if size <= limit:
        return
    largest = pages
    while largest > 1 and ring_bytes(largest, nr_cpus) > limit:
        largest //= 2
    best = (f"the largest -m here is {largest}" if ring_bytes(largest, nr_cpus) <= limit
            else "no -m fits")
    raise UsageError(f"-m {pages}: {pages} pages x {max(1, nr_cpus)} CPUs is a {_size(size)} ring, "
                     f"{why}; {best}")
@dataclass(frozen=True)
class RunConfig:
    events: tuple[str, ...]                 # the -e texts, one per -e option
    module: str | None = None               # the script (None for `help`)
    args: tuple[str, ...] = ()
    cpus: tuple[int, ...] | None = None     # -C
    pids: tuple[int, ...] | None = None     # -p
    tids: tuple[int, ...] | None = None     # -t
    interval_ms: int | None = None          # -i
    mmap_pages: int = DEFAULT_MMAP_PAGES    # -m
    exit_after: int | None = None           # -N
    order: bool = False                     # --order
    perf_buffer: bool = False               # --perf-buffer: BPF sources write to perf rings
    call_graph: bool = False                # -g
    kernel_callchain: bool = True
    user_callchain: bool = True
    python_callchain: bool = False
    verbose: int = 0                        # -v count; -1 with -q

    @property
    def nr_cpus(self) -> int:
        return os.cpu_count() or 1


def tgid_of(tid: int) -> int | None:
    """The process of thread ``tid`` (/proc/TID/status), None if it is gone."""
    try:
        with open(f"/proc/{tid}/status") as f:
            for line in f:
                if line.startswith("Tgid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def traced_processes(config: RunConfig) -> list[int]:
    """The processes of -p and -t, in order (a -t thread stands for its process)."""
    return sorted({tgid_of(t) or t for t in (config.tids or ())} | set(config.pids or ()))
