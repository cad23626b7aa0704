"""``ebpfprof trace``: every event printed as ``event.print()`` prints it, no script needed.

A trace is a run like ``ebpfprof python``'s (``run.session.run_handlers``): the same selectors,
filters, options and exact loss accounting. Its handlers are a ``__sample__`` that prints each
event (perf-prof trace's line, and with a callchain one line per frame) and, with ``-i``, an
``__interval__`` that asks for the statistics SIGUSR2 prints. When it stops, stderr gets the
stop line ``python -v`` prints: why, the events delivered, the events lost (``-q``: not).

Output into a pipe that closes (``| head``) ends the run quietly, with status 0.
"""
from __future__ import annotations

import os
import sys
from types import SimpleNamespace

from ebpfprof import _ring
from ebpfprof.options import RunConfig
from ebpfprof.run.signals import run_signals

__all__ = ["run_trace", "trace_handlers", "silence_stdout"]


def silence_stdout() -> None:
    """Whatever stdout still holds goes nowhere: the reader of the pipe is gone, and the
    interpreter's last flush must not complain about it."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):     # no stdout fd (a test's captured stream): nothing to do
        pass
    finally:
        os.close(devnull)


class _Printer:
    """The trace's ``__sample__``: print the event; a closed pipe stops the run."""

    def __init__(self) -> None:
        self.pipe_closed = False

    def __call__(self, event: "_ring.PerfEvent") -> None:
        try:
            event.print()
        except BrokenPipeError:
            self.pipe_closed = True
            silence_stdout()
            raise SystemExit(0) from None


def trace_handlers() -> SimpleNamespace:
    """The handlers of a trace, as a namespace the session reads like a script's module."""
    def __interval__() -> None:
        run_signals.want_stats = True       # printed by the loop right after, as on SIGUSR2

    return SimpleNamespace(__sample__=_Printer(), __interval__=__interval__)


def run_trace(config: RunConfig) -> int:
    """`ebpfprof trace`: returns the exit status."""
    from ebpfprof.run.session import resolve_run, run_handlers, say_stopped

    config, specs = resolve_run(config)
    handlers = trace_handlers()
    printer = handlers.__sample__

    def report_stop(session, reason: str) -> None:
        if not printer.pipe_closed:        # `| head` has what it wanted: nothing to say
            say_stopped(session, reason, config, level=0)

    status = run_handlers(config, specs, handlers, report_stop)
    return 0 if printer.pipe_closed else status
