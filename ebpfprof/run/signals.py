"""The run's signals, handled from the first millisecond (installed by cli.main before
anything slow) to the last.

- SIGINT, SIGTERM, SIGHUP: the first asks the run to stop; the run stops at its next safe
  point (during start-up: after the step under way; while events flow: at once; during the
  final drain: never — what is buffered is still delivered). A second one interrupts
  whatever runs (a stuck handler, the final drain, a slow start) with KeyboardInterrupt.
- SIGUSR2: asks for statistics; they are printed once events flow (never kills the process).
"""
from __future__ import annotations

import signal
from typing import Callable

__all__ = ["RunSignals", "run_signals"]

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class RunSignals:
    def __init__(self) -> None:
        self.stops = 0                          # stop signals received so far
        self.stop_reason: str | None = None     # the first one's name
        self.want_stats = False
        self.on_second_stop: Callable[[], None] | None = None   # before the interrupt
        self._old: dict[int, object] = {}

    def install(self) -> bool:
        """Handle the run's signals from now on; False if they already were (what was
        received since is kept)."""
        if self._old:
            return False
        self.stops = 0
        self.stop_reason = None
        self.want_stats = False
        for sig in _STOP_SIGNALS:
            self._old.setdefault(sig, signal.signal(sig, self._on_stop))
        self._old.setdefault(signal.SIGUSR2, signal.signal(signal.SIGUSR2, self._on_stats))
        return True

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()

    @property
    def stop_requested(self) -> bool:
        return self.stops > 0

    def _on_stop(self, signum, frame) -> None:
        self.stops += 1
        if self.stops == 1:
            self.stop_reason = signal.Signals(signum).name
            return
        if self.on_second_stop is not None:
            self.on_second_stop()
        raise KeyboardInterrupt

    def _on_stats(self, signum, frame) -> None:
        self.want_stats = True


run_signals = RunSignals()      # the process's one instance
