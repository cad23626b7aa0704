"""Profiler selectors (profile, page-faults, breakpoint): not built yet."""
from __future__ import annotations

from ebpfprof.errors import SelectorError
from ebpfprof.lang.selector.ast import ProfilerSelector
from ebpfprof.options import RunConfig

__all__ = ["resolve_profiler"]


def resolve_profiler(sel: ProfilerSelector, config: RunConfig, online: tuple[int, ...],
                     first_index: int) -> list:
    raise SelectorError(f"{sel.text}: profiler sources ({sel.name}) are not supported yet",
                        hint="use tracepoints for now, e.g. -e sched:sched_wakeup")
