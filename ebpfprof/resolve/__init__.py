"""Parsed selectors → resolved specs, one resolver per selector kind.

A resolver turns one selector into the specs of the events it names (a wildcard names many),
each saying which source serves it (``spec.source``, a key of ``ebpfprof.sources.SOURCES``) and
how its events look (``spec.event``, an ``EventSpec``). Nothing is loaded into the kernel here,
so every mistake in a selector is reported before anything is attached.

Adding a selector kind: a module here with its resolver, one line in ``RESOLVERS``.
"""
from __future__ import annotations

from typing import Callable

from ebpfprof.errors import SelectorError
from ebpfprof.lang.selector.ast import ProbeSelector, ProfilerSelector, TracepointSelector
from ebpfprof.options import RunConfig
from ebpfprof.resolve.common import online_cpus, parse_all
from ebpfprof.resolve.probe import resolve_probe
from ebpfprof.resolve.profiler import resolve_profiler
from ebpfprof.resolve.spec import EventSpec
from ebpfprof.resolve.tracepoint import ResolvedTracepoint, resolve_tracepoint

__all__ = ["resolve_selectors", "duplicates", "RESOLVERS", "EventSpec", "ResolvedTracepoint", "MAX_EVENT_CLASSES"]

# resolver(selector, config, online CPUs, first class index) -> [spec, ...]
RESOLVERS = {
    TracepointSelector: resolve_tracepoint,
    ProbeSelector: resolve_probe,
    ProfilerSelector: resolve_profiler,
}

MAX_EVENT_CLASSES = 0xFFFF      # a record names its class in 16 bits (bpf/prelude.h)


def resolve_selectors(events: tuple[str, ...], config: RunConfig,
                      warn: Callable[[str], None] | None = None) -> list:
    """All selectors of the run, resolved in order; raises the first error found. Mistakes that
    still make a run (the same event selected twice) go to ``warn``."""
    online = online_cpus()
    out: list = []
    for _text, sel in parse_all(events):
        out.extend(RESOLVERS[type(sel)](sel, config, online, len(out)))
    if len(out) > MAX_EVENT_CLASSES:
        raise SelectorError(f"{len(out)} events selected; at most {MAX_EVENT_CLASSES} per run")
    if warn is not None:
        for message in duplicates(out):
            warn(message)

    return out


def duplicates(specs: list) -> list[str]:
    """One line per event that two selectors name with the same filter and the same alias: each
    of its events would reach the same handler twice. (Two aliases of one tracepoint, or two
    filters, are how one asks for that on purpose.)"""
    seen: dict[tuple, int] = {}
    shown: dict[tuple, str] = {}
    for spec in specs:
        sel = spec.selector
        if spec.source != "bpf":
            continue          # two profile selectors are two sets of perf events: each counts
        # a tracepoint is its id; a probe (each has a format id of its own) is its place
        key = (getattr(spec, "identity", spec.event.event_id), spec.event.event_name,
               (getattr(sel, "filter", None) or "").strip())
        seen[key] = seen.get(key, 0) + 1
        shown.setdefault(key, spec.event.event_id)
    out = []
    for key, n in seen.items():
        if n > 1:
            times = "twice" if n == 2 else f"{n} times"
            out.append(f"-e selects {shown[key]} {times} with the same filter and alias: each of its events "
                       f"is delivered {times} (give each an alias=, or drop one)")
    return out
