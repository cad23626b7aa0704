"""What an event source is: one kind of event producer in a run.

The session (``run/session.py``) drives every source of a run through the same steps, in
this order, and knows nothing else about them:

    source = SOURCES[spec.source](config, specs)   nothing in the kernel yet
    source.open()            compile/load/attach, or perf_event_open + mmap: gated, records nothing
    source.add_rings(reader) its rings go to the one reader
    source.start()           the gate opens: events flow (every source of the run, back to back)
    ... the run loop waits on source.wait_fds and drains the reader ...
    source.stop()            the gate closes: nothing more is recorded; what is buffered stays
    source.pending_lost()    losses it holds that no record carried (read after the last drain)
    source.close()           releases everything; safe at any point, and twice

Adding a source: a module in ``sources/`` with a ``Source`` subclass, one line in
``sources.SOURCES``, and a resolver in ``resolve/`` whose specs name it.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from ebpfprof.options import RunConfig

__all__ = ["Source"]


class Source(ABC):
    """One kind of event producer, serving the resolved specs whose ``source`` is its ``kind``."""

    kind: ClassVar[str]

    def __init__(self, config: RunConfig, specs: list) -> None:
        self.config = config
        self.specs = specs

    @property
    def events(self) -> list:
        """The ``EventSpec`` of each spec, in class-index order."""
        return [s.event for s in self.specs]

    @abstractmethod
    def open(self) -> None:
        """Get into the kernel with the gate closed; raise an EbpfprofError if it refuses."""

    @abstractmethod
    def add_rings(self, reader) -> None:
        """Hand every ring of this source to the reader (``_ring.Reader``)."""

    @property
    @abstractmethod
    def wait_fds(self) -> list[int]:
        """Fds the run loop waits on (readable when the source woke the reader)."""

    @abstractmethod
    def start(self) -> None:
        """Open the gate: from now on events are recorded."""

    @abstractmethod
    def stop(self) -> None:
        """Close the gate; returns once nothing more can be written to the rings."""

    @abstractmethod
    def pending_lost(self) -> int:
        """Events lost that no record reported (read once, after the last drain)."""

    def task_comm(self, tid: int) -> str | None:
        """The name this source saw given to thread ``tid`` during the run (for print()), if any."""
        return None

    def stop_notes(self) -> list[str]:
        """Said with -v when the run stops (e.g. how often the kernel throttled sampling)."""
        return []

    @abstractmethod
    def describe(self) -> str:
        """What it attached, for -v."""

    @abstractmethod
    def close(self) -> None:
        """Release everything it holds in the kernel; idempotent."""
