"""RunConfig: everything the command line decided, validated, frozen."""
from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["RunConfig", "DEFAULT_MMAP_PAGES"]

# Ring pages per CPU when -m is not given: 4 MiB per CPU holds ~80 ms of a 1 M events/s stream
# of 56-byte records even if the reader stalls, far beyond the 20 ms timed drain.
DEFAULT_MMAP_PAGES = 1024
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
    call_graph: bool = False                # -g
    kernel_callchain: bool = True
    user_callchain: bool = True
    python_callchain: bool = False
    verbose: int = 0                        # -v count; -1 with -q

    @property
    def nr_cpus(self) -> int:
        return os.cpu_count() or 1
