"""Selector nodes: what one ``-e`` item says, with where it says it.

Every node keeps a ``span`` (offsets into the whole ``-e`` text) so later passes can point
at the exact spot when something is wrong.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ebpfprof.lang.span import Span

__all__ = [
    "Span", "Attr", "Selector", "TracepointSelector", "ProbeSelector", "ProfilerSelector",
    "PROBE_KINDS",
]

PROBE_KINDS = ("kprobe", "kretprobe", "uprobe", "uretprobe")


@dataclass(frozen=True)
class Attr:
    """One ``/ATTR/`` item: ``stack``, ``max-stack=8``, ``alias=w1``, ``cpus=0-3``."""

    key: str
    value: str | None
    span: Span


@dataclass(frozen=True)
class Selector:
    """Common part of every selector kind."""

    text: str                       # this selector's own text, e.g. "sched:sched_wakeup/pid>1/"
    span: Span                      # where it sits in the whole -e text
    attrs: tuple[Attr, ...] = ()

    def attr(self, key: str) -> Attr | None:
        for a in self.attrs:
            if a.key == key:
                return a
        return None

    @property
    def alias(self) -> str | None:
        a = self.attr("alias")
        return a.value if a else None

    @property
    def stack(self) -> bool:
        return self.attr("stack") is not None

    @property
    def python_stack(self) -> bool:
        return self.attr("python-stack") is not None

    @property
    def max_stack(self) -> int | None:
        a = self.attr("max-stack")
        return int(a.value) if a and a.value is not None else None

    @property
    def cpus(self) -> tuple[int, ...] | None:
        from ebpfprof.lang.idlist import parse_id_list

        a = self.attr("cpus")
        return parse_id_list(a.value or "", "cpus=") if a else None


@dataclass(frozen=True)
class TracepointSelector(Selector):
    """``sys:name[/filter/ATTR/.../]``; system and name may hold ``* ? [..]`` wildcards."""

    system: str = ""
    name: str = ""
    filter: str | None = None

    @property
    def has_wildcard(self) -> bool:
        return any(c in self.system + self.name for c in "*?[")


@dataclass(frozen=True)
class ProbeSelector(Selector):
    """``kprobe:func``, ``kretprobe:func+0x10``, ``uprobe:func@"file"``, ``uprobe:"func@file"``,
    ``uprobe:file:func``, ``uretprobe:libc:malloc``, ``uprobe:/bin/bash:0x4f2a0``.

    The place is ``function`` (+ ``offset``), or ``address`` alone (a uprobe's ``0xADDR``: an
    address of the file, as ``nm`` and ``objdump -d`` print them)."""

    kind: str = "kprobe"
    function: str = ""
    file: str | None = None
    filter: str | None = None
    offset: int = 0                       # FUNC+OFF
    address: int | None = None            # 0xADDR
    function_span: Span | None = None     # where FUNC (or 0xADDR) is written
    file_span: Span | None = None         # where FILE is written

    @property
    def is_return(self) -> bool:
        return self.kind.endswith("retprobe")

    @property
    def place(self) -> str:
        """FUNC, FUNC+0xOFF or 0xADDR, as written back in messages."""
        if self.address is not None:
            return f"0x{self.address:x}"
        return self.function + (f"+0x{self.offset:x}" if self.offset else "")


@dataclass(frozen=True)
class ProfilerSelector(Selector):
    """``profile``, ``page-faults/-g/``, ``profile/-F 997 -g/alias=p/``: an embedded profiler."""

    name: str = ""
    options: tuple[str, ...] = field(default_factory=tuple)   # its argv, split like a shell's
    options_span: Span | None = None      # where the options text sits
    filter: str | None = None             # --filter EXPR: a filter on its samples, in the kernel
    filter_span: Span | None = None
