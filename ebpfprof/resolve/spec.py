"""What resolving a selector produces: the description of its events, shared by every source."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ebpfprof.kernel.event_format import EventFormat

if TYPE_CHECKING:
    from ebpfprof.profilers.base import SampleEvents

__all__ = ["EventSpec", "handler_name"]


@dataclass(frozen=True)
class EventSpec:
    """How one resolved selector's events look to the script.

    The run builds the selector's event class from it (name, handler, field table), ``print()``
    renders events with it (it is the class's ``info``), and ``help`` lists it.
    """

    event_name: str            # the value of _event: "sys:name", or "sys:alias"
    handler: str               # the handler's name: sys__name, or sys__alias
    title: str                 # help's heading: "sched:sched_wakeup (alias w)"
    format: EventFormat | None # a tracepoint's record: its fields; print fmt for print()
    # Whether the record's common_flags / common_preempt_count are the kernel's (perf fills
    # them; a BPF program cannot see them: bpf/prelude.h)
    header_known: bool = False
    # A profiler's samples: their fields and print() line (format is None then)
    sample: "SampleEvents | None" = None
    # Events to deliver before this selector stops (-N in a profiler's options); None: no limit
    budget: int | None = None
    # What a field holds, where its C type does not say (a probe's arg1 is a register)
    meanings: tuple[tuple[str, str], ...] = ()

    @property
    def event_id(self) -> str:
        """What the event is, whatever its alias: "sched:sched_wakeup", "profile"."""
        return self.format.full_name if self.format is not None else self.title.split(" ", 1)[0]


def handler_name(prefix: str | None, name: str) -> str:
    """``sched__sched_wakeup`` for (sched, sched_wakeup); ``page_faults`` for (None, page-faults).

    '-', '.', ':' and '+' become '_' so the name is a Python identifier (uprobe__f_0x4 for f+0x4).
    """
    text = f"{prefix}__{name}" if prefix else name
    for c in "-.:+":
        text = text.replace(c, "_")
    return text
