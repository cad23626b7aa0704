"""The run loop: wait, drain, order, count losses, fire timers and signals, call callbacks.

Per-event work is in the C reader (``_ring.Reader.drain``); this loop runs a few dozen times a
second at most. It waits on the sources' fds (a BPF program wakes it every few thousand
records) with a timeout, so an event waits at most ``DRAIN_PERIOD_MS`` before its handler sees
it (``STARTUP_DRAIN_MS`` during the first ``STARTUP_S``).

How a run stops: the first SIGINT/SIGTERM/SIGHUP (or -N, or the end of the -p processes) ends
the loop; then every source stops recording and what the rings hold is delivered. A second
signal skips what is still undelivered, and says how many records that was: they count as lost.
"""
from __future__ import annotations

import select
import sys
import time
from typing import Callable

from ebpfprof import _ring
from ebpfprof.options import RunConfig
from ebpfprof.run.script import Callbacks, print_script_traceback
from ebpfprof.run.signals import run_signals

__all__ = ["Dispatcher", "call_callback", "DRAIN_PERIOD_MS", "ORDER_WINDOW_NS"]

# The reader drains at least this often, so an event waits at most this long in the ring.
DRAIN_PERIOD_MS = 20
# For the first STARTUP_S after the start it drains every STARTUP_DRAIN_MS instead, so the
# first events reach their handlers a millisecond after they happen, not up to 20 ms later.
STARTUP_DRAIN_MS = 1
STARTUP_S = 0.1
# With --order, an event is delivered once everything older than it must have arrived:
# records become visible microseconds after their timestamp, so 10 ms is ample.
ORDER_WINDOW_NS = 10_000_000


def call_callback(fn: Callable | None, *args) -> bool:
    """Call a script callback; print its traceback if it raises. True if it ran cleanly."""
    if fn is None:
        return True
    try:
        fn(*args)
        return True
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:
        print_script_traceback(e)
        return False


def _exit_status(e: SystemExit) -> int:
    """What the process exits with for sys.exit(code); a message is printed, as Python does."""
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code
    sys.stdout.flush()
    sys.stderr.write(f"{e.code}\n")
    return 1


def _stamp() -> str:
    """perf-prof's timestamp: 2026-12-02 15:04:05.123456 (local time)."""
    now = time.time()
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f".{int(now * 1e6) % 1_000_000:06d}"


def _monotonic_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    # state is the field after "(comm)"; a zombie has finished its work
    return stat[stat.rfind(")") + 2:stat.rfind(")") + 3] not in ("Z", "X")


class Dispatcher:
    """Runs until SIGINT/SIGTERM, -N events, or the end of the -p processes."""

    def __init__(self, session, classes: list, callbacks: Callbacks, config: RunConfig) -> None:
        self.session = session            # run.session.TracingSession: reader, wait_fds, stop()
        self.reader = session.reader
        self.classes = classes
        self.callbacks = callbacks
        self.config = config
        self.signals = run_signals
        self._stop_reason: str | None = None
        self._lost_reported = 0
        self._lost_last_report = 0.0
        self._old_handlers: dict[int, object] = {}
        self._poller = None
        self.exit_code: int | None = None     # set when a handler called sys.exit()

    # -- reporting ----------------------------------------------------------------------------
    def _report_lost(self, force: bool = False) -> None:
        total = self.reader.lost
        if total == self._lost_reported:
            return
        now = time.monotonic()
        if not force and now - self._lost_last_report < 1.0:
            return
        sys.stderr.write(f"{_stamp()} python: lost {total - self._lost_reported} events\n")
        sys.stderr.flush()
        self._lost_reported = total
        self._lost_last_report = now

    def print_stats(self, indent: int = 2) -> None:
        pad = " " * indent
        r = self.reader
        out = [f"{pad}ebpfprof: records {r.records}  delivered {r.delivered}  lost {r.lost}  "
               f"handler errors {_ring.handler_errors()}"]
        for cls in self.classes:
            out.append(f"{pad}  {cls.name}: delivered {cls.delivered}  no handler {cls.dropped}")
        print("\n".join(out), flush=True)
        call_callback(self.callbacks.print_stat, indent)

    def _lost_at_end(self) -> None:
        """Losses no record carried: after the last record, or skipped by the kernel."""
        pending = self.session.pending_lost()
        if not pending:
            return
        if self.config.order:
            start, end = self.reader.last_time, _monotonic_ns()
        else:
            start = end = 0
        # Through the reader, as in-stream losses are: counted, then __lost__ (a raising
        # __lost__ is reported like any handler error).
        try:
            self.reader.report_lost(pending, start, end)
        except SystemExit as e:
            self.exit_code = _exit_status(e)
        except KeyboardInterrupt:
            self.exit_code = 130

    # -- the loop -----------------------------------------------------------------------------
    def _drain(self, flush: bool = False) -> None:
        if self.config.order:
            horizon = _monotonic_ns() - ORDER_WINDOW_NS
            self.reader.drain(ordered=True, horizon=max(horizon, 0), flush=flush)
        else:
            self.reader.drain()

    def _done(self) -> bool:
        if self._stop_reason:
            return True
        if self.signals.stop_requested:
            self._stop_reason = self.signals.stop_reason
            return True
        if self.reader.budget == 0:
            self._stop_reason = f"-N {self.config.exit_after}"
            return True
        if self.classes and all(c.budget == 0 for c in self.classes):
            self._stop_reason = "every source delivered its -N"
            return True
        return False

    def begin(self) -> None:
        """Get ready to loop: the -N budget, the fds to wait on, the first -i and -p checks."""
        cfg = self.config
        if cfg.exit_after is not None:
            self.reader.budget = cfg.exit_after
        self._poller = select.epoll()
        for fd in self.session.wait_fds:
            # Edge-triggered: wake on the sources' wakeups (every few thousand records),
            # not whenever a record is there, so a flood is read in large batches.
            self._poller.register(fd, select.EPOLLIN | select.EPOLLET)
        now = time.monotonic()
        self._interval_s = cfg.interval_ms / 1000 if cfg.interval_ms else None
        self._next_interval = now + self._interval_s if self._interval_s else None
        self._next_pid_check = now + 0.1
        self._startup_ends = now + STARTUP_S
        self.signals.on_second_stop = self.reader.stop

    def step(self, max_wait: float | None = None) -> bool:
        """One turn of the loop: wait (a drain period at most, or ``max_wait`` s), drain, then
        the timers, statistics, loss reports and the -p check. False once the run is done."""
        if self._done():
            return False
        cfg = self.config
        now = time.monotonic()
        timeout = (STARTUP_DRAIN_MS if now < self._startup_ends else DRAIN_PERIOD_MS) / 1000
        if self._next_interval is not None:
            timeout = max(0.0, min(timeout, self._next_interval - now))
        if max_wait is not None:
            timeout = max(0.0, min(timeout, max_wait))
        try:
            self._poller.poll(timeout)
        except InterruptedError:
            pass
        self._drain()
        if self._done():
            return False
        now = time.monotonic()
        if self._next_interval is not None and now >= self._next_interval:
            call_callback(self.callbacks.interval)
            self._next_interval += self._interval_s
            if self._next_interval < now:   # a slow __interval__: do not fire a burst
                self._next_interval = now + self._interval_s
        if self.signals.want_stats:
            self.signals.want_stats = False
            self.print_stats()
        self._report_lost()
        if cfg.pids and now >= self._next_pid_check:
            self._next_pid_check = now + 0.1
            if not any(_alive(p) for p in cfg.pids):
                self._stop_reason = "end of input (the -p processes exited)"
                return False
        return True

    def _final_drain(self) -> None:
        """Deliver what the stopped sources left in the rings (in order with --order), within
        the -N budget. Drains until a pass reads nothing: a record still being written when
        one pass began is read by the next."""
        for _ in range(_FINAL_PASSES):
            if self.reader.budget == 0:
                return
            before = self.reader.records
            self._drain(flush=True)
            if self.reader.records == before:
                return

    def _skip_rest(self) -> None:
        """After a second signal: whatever is undelivered is counted lost, and said."""
        skipped = self.reader.discard()
        if skipped and self.config.verbose >= 0:
            sys.stderr.write(f"ebpfprof: interrupted twice: {skipped} records not delivered "
                             "(counted as lost)\n")

    def run(self) -> str:
        """Loop until done; returns why it stopped. __exit__ is the caller's (see session)."""
        self.begin()
        try:
            interrupted = self._loop()
        except BaseException:
            self.release()
            raise
        return self.finish(interrupted)

    def _loop(self) -> bool:
        """step() until done; True if a second signal interrupted it."""
        try:
            while self.step():
                pass
        except SystemExit as e:        # sys.exit() in a handler: stop, still run __exit__
            self._stop_reason = "sys.exit() in a handler"
            self.exit_code = _exit_status(e)
        except KeyboardInterrupt:      # a second signal: stop now, still run __exit__
            self._stop_reason = "interrupted twice"
            self.exit_code = 130
            return True
        return False

    def finish(self, interrupted: bool = False) -> str:
        """Stop every source and deliver what the rings still hold (unless ``interrupted``:
        then it is counted lost), report the losses; returns why the run stopped."""
        try:
            # From here on nothing more is recorded: what the rings hold is all there is.
            self.session.stop()
            if self.exit_code is None:
                try:
                    self._final_drain()
                except SystemExit as e:
                    self.exit_code = _exit_status(e)
                except KeyboardInterrupt:
                    self.exit_code = 130
                    interrupted = True
            if interrupted:
                self._skip_rest()
            self._lost_at_end()
            self._report_lost(force=True)
        finally:
            self.release()
        return self._stop_reason or "stop"

    def release(self) -> None:
        """Stop looping, delivering nothing more (finish() does it too): the poller is closed."""
        self.signals.on_second_stop = None
        if self._poller is not None:
            self._poller.close()
            self._poller = None


_FINAL_PASSES = 100
