"""Event sources, by the kind a resolved spec names (``spec.source``); see ``sources/base.py``."""
from __future__ import annotations

from ebpfprof.sources.base import Source
from ebpfprof.sources.bpf import BpfSource
from ebpfprof.sources.perf import PerfSource

__all__ = ["SOURCES", "Source", "sources_for"]

SOURCES: dict[str, type[Source]] = {
    BpfSource.kind: BpfSource,
    PerfSource.kind: PerfSource,
}


def sources_for(specs: list, config) -> list[Source]:
    """One source per kind the specs name, each with its specs, in order of first use."""
    groups: dict[str, list] = {}
    for spec in specs:
        groups.setdefault(spec.source, []).append(spec)
    return [SOURCES[kind](config, group) for kind, group in groups.items()]
