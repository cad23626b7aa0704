"""Parsed selectors → resolved specs, one resolver per selector kind.

A resolver turns one selector into the specs of the events it names (a wildcard names many),
each saying which source serves it (``spec.source``, a key of ``ebpfprof.sources.SOURCES``) and
how its events look (``spec.event``, an ``EventSpec``). Nothing is loaded into the kernel here,
so every mistake in a selector is reported before anything is attached.

Adding a selector kind: a module here with its resolver, one line in ``RESOLVERS``.
"""
from __future__ import annotations

from ebpfprof.errors import SelectorError
from ebpfprof.lang.selector.ast import ProbeSelector, ProfilerSelector, TracepointSelector
from ebpfprof.options import RunConfig
from ebpfprof.resolve.common import online_cpus, parse_all
from ebpfprof.resolve.probe import resolve_probe
from ebpfprof.resolve.profiler import resolve_profiler
from ebpfprof.resolve.spec import EventSpec
from ebpfprof.resolve.tracepoint import ResolvedTracepoint, resolve_tracepoint

__all__ = ["resolve_selectors", "RESOLVERS", "EventSpec", "ResolvedTracepoint", "MAX_EVENT_CLASSES"]

# resolver(selector, config, online CPUs, first class index) -> [spec, ...]
RESOLVERS = {
    TracepointSelector: resolve_tracepoint,
    ProbeSelector: resolve_probe,
    ProfilerSelector: resolve_profiler,
}

MAX_EVENT_CLASSES = 0xFFFF      # a record names its class in 16 bits (bpf/prelude.h)


def resolve_selectors(events: tuple[str, ...], config: RunConfig) -> list:
    """All selectors of the run, resolved in order; raises the first error found."""
    online = online_cpus()
    out: list = []
    for _text, sel in parse_all(events):
        out.extend(RESOLVERS[type(sel)](sel, config, online, len(out)))
    if len(out) > MAX_EVENT_CLASSES:
        raise SelectorError(f"{len(out)} events selected; at most {MAX_EVENT_CLASSES} per run")
    return out
