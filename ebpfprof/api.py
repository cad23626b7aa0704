"""Trace events from your own program or notebook: the run of ``ebpfprof python``, as a library.

    import ebpfprof

    with ebpfprof.trace("sched:sched_wakeup/prio<120/", cpus="0-1") as events:
        for event in events.take(1000, timeout=5):   # PerfEvent objects, as scripts get them
            print(event._event, event.comm, event.pid)

A ``Trace`` is one run on the same path as the commands (``run.session``: resolve_run, open_run,
start_run, then the Dispatcher, stepped from your loop instead of its own): the same selectors,
filters in the kernel, options and exact loss accounting. Events reach ``take()`` (or
``rows()``, their ``to_dict()``, which ``pandas.DataFrame`` takes) through a ``__sample__`` that
keeps them; ``handlers={...}`` gives selectors handlers of their own, called while ``take()``
or ``run()`` waits, as in a script.

Leaving the ``with`` block detaches everything, also when the block raised; so does the end of
the interpreter (a finalizer) for a trace never closed. No signal handler is installed: Ctrl-C
raises KeyboardInterrupt in your code as usual, and leaving the block detaches. One trace at a
time per process.
"""
from __future__ import annotations

import collections
import os
import time
import weakref
from types import SimpleNamespace
from typing import Callable, Iterable, Iterator, Mapping

from ebpfprof.errors import UsageError
from ebpfprof.lang.idlist import parse_id_list
from ebpfprof.options import DEFAULT_MMAP_PAGES, RunConfig, check_mmap_pages

__all__ = ["Trace", "trace", "collect"]

# The callbacks a handlers mapping may name beside its selectors' handlers (run/script.py).
_CALLBACKS = ("__sample__", "__init__", "__exit__", "__interval__", "__lost__", "__print_stat__")

_open_trace: "weakref.ref[Trace] | None" = None      # the process's open trace, if any


def _ids(value, what: str) -> tuple[int, ...] | None:
    """"0-3,6", 3 or [0, 1] → (0, 1, ...); None stays None."""
    if value is None:
        return None
    if isinstance(value, int):
        value = [value]
    if isinstance(value, str):
        try:
            return parse_id_list(value, what)
        except ValueError as e:
            raise UsageError(f"{what}: {e}") from None
    ids = tuple(sorted({int(v) for v in value}))
    if not ids or any(i < 0 for i in ids):
        raise UsageError(f"{what}: {list(value)!r} is not a list of ids", hint="e.g. \"0-3,6\" or [0, 1]")
    return ids


def _config(selectors: tuple[str, ...], *, cpus, pids, tids, exit_after: int | None, order: bool,
            call_graph: bool, kernel_callchain: bool, user_callchain: bool, python_callchain: bool,
            mmap_pages: int, perf_buffer: bool, interval_ms: int | None, verbose: int) -> RunConfig:
    """The RunConfig of a trace's arguments, checked as the command line checks its options."""
    if not selectors or not all(isinstance(s, str) and s.strip() for s in selectors):
        raise UsageError("trace() needs event selectors: trace(\"sched:sched_wakeup\", ...)")
    if mmap_pages < 1 or mmap_pages & (mmap_pages - 1):
        raise UsageError(f"mmap_pages={mmap_pages} is not a power of two")
    check_mmap_pages(mmap_pages, os.cpu_count() or 1)
    for name, value in (("exit_after", exit_after), ("interval_ms", interval_ms)):
        if value is not None and value <= 0:
            raise UsageError(f"{name}={value} is not a positive number")
    return RunConfig(events=tuple(selectors), cpus=_ids(cpus, "cpus"), pids=_ids(pids, "pids"),
                     tids=_ids(tids, "tids"), exit_after=exit_after, order=order, call_graph=call_graph,
                     kernel_callchain=kernel_callchain, user_callchain=user_callchain,
                     python_callchain=python_callchain, mmap_pages=mmap_pages, perf_buffer=perf_buffer,
                     interval_ms=interval_ms, verbose=verbose)


def _namespace(specs: list, handlers: Mapping[str, Callable], keep: Callable) -> SimpleNamespace:
    """What the session reads like a script's module: ``handlers`` under the script's names
    (a selector's event name, "sched:sched_wakeup", stands for its handler, sched__sched_wakeup),
    and ``keep`` as ``__sample__`` unless one is given."""
    by_event = {spec.event.event_name: spec.event.handler for spec in specs}
    names = set(by_event.values()) | set(_CALLBACKS)
    out: dict[str, Callable] = {"__sample__": keep}
    for key, fn in handlers.items():
        name = by_event.get(key, key)
        if name not in names:
            known = ", ".join(sorted(by_event) + sorted(set(by_event.values())))
            raise UsageError(f"handlers: {key!r} names no selector of this trace and no callback",
                             hint=f"its selectors: {known}; callbacks: {', '.join(_CALLBACKS)}")
        if not callable(fn):
            raise UsageError(f"handlers: {key!r} is not callable")
        out[name] = fn
    return SimpleNamespace(**out)


class Trace:
    """One tracing run of this process; see the module's docstring. Made by ``trace()``."""

    def __init__(self, config: RunConfig, handlers: Mapping[str, Callable] | None = None) -> None:
        self.config = config
        self._handlers = dict(handlers or {})
        self._kept: collections.deque = collections.deque()   # events for take()
        self._session = None
        self._callbacks = None
        self._dispatcher = None
        self._finished = False          # the Dispatcher has stopped the sources and drained
        self._finalizer = None
        self._counts = (0, 0)           # delivered, lost: kept when the session closes

    # -- the run ------------------------------------------------------------------------------
    def open(self) -> "Trace":
        """Attach and start recording (``with`` and ``take()`` do it); raises an EbpfprofError
        for a mistake in the selectors or options, or what the kernel refused."""
        global _open_trace
        if self._session is not None:
            return self
        if self._finished:
            raise UsageError("this trace is closed: start another with ebpfprof.trace(...)")
        other = _open_trace() if _open_trace is not None else None
        if other is not None and other is not self:
            raise UsageError("another trace is open in this process",
                             hint="close it first (leave its with block, or call its close())")
        from ebpfprof.run.session import open_run, resolve_run, start_run

        config, specs = resolve_run(self.config)
        session, callbacks = open_run(config, specs, _namespace(specs, self._handlers, self._kept.append))
        session.__enter__()
        try:
            self._dispatcher = start_run(session, callbacks, config)
            self._dispatcher.begin()
        except BaseException:
            session.close()
            self._dispatcher = None
            raise
        self.config, self._session, self._callbacks = config, session, callbacks
        # Detach at the end of the interpreter (or when dropped) if nobody closed it
        self._finalizer = weakref.finalize(self, session.close)
        _open_trace = weakref.ref(self)
        return self

    def _step(self, deadline: float | None) -> bool:
        """One turn of the run's loop (events reach handlers and _kept); False once it is done."""
        if self._finished or self._session is None:
            return False
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        if self._dispatcher.step(max_wait=wait):
            return True
        self._finish()
        return False

    def _finish(self) -> None:
        """Stop the sources, deliver what they left (within exit_after), account losses."""
        if self._finished or self._dispatcher is None:
            return
        self._finished = True
        from ebpfprof.run.session import say_stopped

        reason = self._dispatcher.finish()
        say_stopped(self._session, reason, self.config)

    def take(self, n: int | None = None, timeout: float | None = None) -> Iterator:
        """Yield up to ``n`` events (all of them: None) as they arrive, for at most ``timeout``
        seconds (no limit: None), or until the run ends (``exit_after``, the ``pids`` exited).
        Events are the script API's ``PerfEvent`` objects and stay valid once yielded. Those not
        taken yet wait for the next take()."""
        if n is not None and n < 0:
            raise UsageError(f"take({n}): n must be 0 or more")
        self.open()
        deadline = None if timeout is None else time.monotonic() + timeout
        given = 0
        while n is None or given < n:
            if self._kept:
                yield self._kept.popleft()
                given += 1
                continue
            if deadline is not None and time.monotonic() >= deadline:
                return
            if not self._step(deadline) and not self._kept:
                return

    def rows(self, n: int | None = None, timeout: float | None = None) -> list[dict]:
        """take()'s events as ``to_dict()`` rows: a list ``pandas.DataFrame(rows)`` takes."""
        return [event.to_dict() for event in self.take(n, timeout)]

    def run(self, timeout: float | None = None) -> None:
        """Deliver events to ``handlers`` for ``timeout`` seconds (None: until the run ends or
        Ctrl-C). Events of selectors without a handler are kept for take()."""
        self.open()
        deadline = None if timeout is None else time.monotonic() + timeout
        while deadline is None or time.monotonic() < deadline:
            if not self._step(deadline):
                return

    def close(self, *, deliver: bool = True) -> None:
        """Detach everything; then ``__exit__`` of ``handlers`` runs. With ``deliver`` (unless
        the block raised) what the rings still hold is delivered first, to handlers and take()."""
        global _open_trace
        if self._session is None:
            return
        session, self._session = self._session, None
        try:
            if deliver:
                self._finish()
            elif not self._finished:
                self._finished = True
                self._dispatcher.release()
        finally:
            if session.reader is not None:
                self._counts = (session.reader.delivered, session.reader.lost)
            session.close()
            self._finalizer.detach()
            if _open_trace is not None and _open_trace() is self:
                _open_trace = None
        if deliver:
            from ebpfprof.run.dispatch import call_callback

            call_callback(self._callbacks.exit)

    # -- what it did --------------------------------------------------------------------------
    @property
    def delivered(self) -> int:
        """Events given to handlers and to take()'s queue so far."""
        reader = self._session.reader if self._session is not None else None
        return reader.delivered if reader is not None else self._counts[0]

    @property
    def lost(self) -> int:
        """Events the kernel could not write (the ring was full), counted exactly."""
        reader = self._session.reader if self._session is not None else None
        return reader.lost if reader is not None else self._counts[1]

    def __enter__(self) -> "Trace":
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(deliver=exc_type is None)

    def __repr__(self) -> str:
        state = "open" if self._session is not None else "closed" if self._finished else "not started"
        return f"<ebpfprof.Trace {','.join(self.config.events)} {state}>"


def trace(*selectors: str, handlers: Mapping[str, Callable] | None = None,
          cpus: str | Iterable[int] | None = None, pids: str | Iterable[int] | None = None,
          tids: str | Iterable[int] | None = None, exit_after: int | None = None,
          order: bool = False, call_graph: bool = False, kernel_callchain: bool = True,
          user_callchain: bool = True, python_callchain: bool = False, mmap_pages: int = DEFAULT_MMAP_PAGES,
          perf_buffer: bool = False, interval_ms: int | None = None, verbose: int = 0) -> Trace:
    """A trace of ``selectors`` (``-e`` texts: "sched:sched_wakeup/prio<120/", "profile",
    'uprobe:c:malloc'); attached by ``with`` or the first ``take()``.

    The keywords are the command line's options: ``cpus`` (-C), ``pids`` (-p), ``tids`` (-t) as
    "0-3,6" or a list of ints, ``exit_after`` (-N), ``order`` (--order), ``call_graph`` (-g),
    ``kernel_callchain``/``user_callchain``, ``python_callchain``, ``mmap_pages`` (-m), ``perf_buffer``,
    ``interval_ms`` (-i: calls handlers' ``__interval__``), ``verbose`` (-v; -1 is -q).
    ``handlers`` maps a selector's event name or handler name ("sched:sched_wakeup" or
    "sched__sched_wakeup") and the script callbacks ("__lost__", "__exit__", ...) to functions.
    """
    config = _config(selectors, cpus=cpus, pids=pids, tids=tids, exit_after=exit_after, order=order,
                     call_graph=call_graph, kernel_callchain=kernel_callchain,
                     user_callchain=user_callchain, python_callchain=python_callchain,
                     mmap_pages=mmap_pages, perf_buffer=perf_buffer, interval_ms=interval_ms,
                     verbose=verbose)
    return Trace(config, handlers)


def collect(*selectors: str, n: int | None = None, timeout: float | None = None, **options) -> list[dict]:
    """The ``to_dict()`` rows of up to ``n`` events within ``timeout`` seconds, detached after:
    ``pandas.DataFrame(ebpfprof.collect("sched:sched_switch", n=1000, timeout=5))``.
    ``options`` are trace()'s."""
    if n is None and timeout is None and options.get("exit_after") is None and options.get("pids") is None:
        raise UsageError("collect() needs an end: n=, timeout=, exit_after= or pids=")
    with trace(*selectors, **options) as events:
        return events.rows(n, timeout)
