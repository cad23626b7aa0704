"""What resolving any selector kind needs: the selectors of every -e, online CPUs, cpus=."""
from __future__ import annotations

import os

from ebpfprof.errors import UsageError
from ebpfprof.lang.idlist import format_id_list, parse_id_list
from ebpfprof.lang.selector.ast import Selector
from ebpfprof.lang.selector.parser import parse_selectors
from ebpfprof.options import RunConfig

__all__ = ["parse_all", "online_cpus", "cpus_for"]


def parse_all(events: tuple[str, ...]) -> list[tuple[str, Selector]]:
    """Every selector of every -e option, with the -e text it came from."""
    out = []
    for text in events:
        out.extend((text, s) for s in parse_selectors(text))
    return out


def online_cpus() -> tuple[int, ...]:
    try:
        with open("/sys/devices/system/cpu/online") as f:
            return parse_id_list(f.read().strip())
    except (OSError, ValueError):
        return tuple(range(os.cpu_count() or 1))


def cpus_for(sel: Selector, config: RunConfig, online: tuple[int, ...]) -> tuple[int, ...] | None:
    """The CPUs a selector watches: -C and its cpus= together; None for every CPU."""
    for what, cpus in (("-C", config.cpus), (f"{sel.text}: cpus=", sel.cpus)):
        if cpus is not None:
            missing = [c for c in cpus if c not in online]
            if missing:
                raise UsageError(f"{what} names CPU {missing[0]}, which is not online",
                                 hint=f"online CPUs here: {format_id_list(online)}")
    if config.cpus is None:
        return sel.cpus
    if sel.cpus is None:
        return config.cpus
    both = tuple(c for c in sel.cpus if c in set(config.cpus))
    if not both:
        raise UsageError(f"{sel.text}: cpus={sel.attr('cpus').value} and -C share no CPU")
    return both
