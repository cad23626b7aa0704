"""The embedded profilers: perf_event_open sources, one module each (see profilers/base.py)."""
from __future__ import annotations

from types import ModuleType

from ebpfprof.profilers import breakpoint, page_faults, profile

__all__ = ["PROFILERS"]

# name → module with NAME, SUMMARY, OPTIONS and plan(selector, config) -> ProfilerPlan
PROFILERS: dict[str, ModuleType] = {m.NAME: m for m in (profile, page_faults, breakpoint)}
