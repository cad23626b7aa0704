"""User-space addresses to symbols, per process, through BCC's symbol cache (ELF, debuglink,
perf maps, demangling)."""
from __future__ import annotations

import os
import time

from ebpfprof.bcc_loader import import_bcc

__all__ = ["UserSymbols"]


class UserSymbols:
    """Per-process user-space symbols through BCC's symbol cache (ELF, debuglink, perf maps).

    A process's cache reads /proc/PID/maps when it is made and keeps its files open, so it
    answers after the process exits: `preload` the processes a run knows at its start (-p),
    whose samples are decoded after the process may be gone. An address outside every known
    mapping (a library loaded since) refreshes the maps, at most once a second per process."""

    # (pid, addr) answers kept: profiles hit the same few thousand addresses again and again,
    # and each BCC lookup is a ctypes call (~20 us a frame without this)
    MAX_ANSWERS = 1 << 16
    REFRESH_INTERVAL = 1.0

    def __init__(self) -> None:
        self._bcc = import_bcc()
        self._caches: dict[int, object] = {}
        self._refreshed: dict[int, float] = {}
        self._answers: dict[tuple[int, int], tuple[str, int, str]] = {}

    def preload(self, pid: int) -> None:
        """Read PID's mappings now, while it runs."""
        self._cache(pid)

    def resolve(self, pid: int, addr: int) -> tuple[str, int, str]:
        key = (pid, addr)
        answer = self._answers.get(key)
        if answer is None:
            if len(self._answers) >= self.MAX_ANSWERS:
                self._answers.clear()
            answer = self._answers[key] = self._lookup(pid, addr)
        return answer

    def _cache(self, pid: int):
        cache = self._caches.get(pid)
        if cache is None:
            cache = self._caches[pid] = self._bcc.SymbolCache(pid)
            self._refreshed[pid] = time.monotonic()
        return cache

    def _lookup(self, pid: int, addr: int) -> tuple[str, int, str]:
        cache = self._cache(pid)
        name, offset, module = cache.resolve(addr, demangle=True)
        if module is None and self._may_refresh(pid):
            self._bcc.lib.bcc_symcache_refresh(cache.cache)
            name, offset, module = cache.resolve(addr, demangle=True)
        symbol = name.decode(errors="replace") if name else "Unknown"
        dso = module.decode(errors="replace") if module else "[unknown]"
        return symbol, offset if name else 0, dso

    def _may_refresh(self, pid: int) -> bool:
        now = time.monotonic()
        if now - self._refreshed.get(pid, 0.0) < self.REFRESH_INTERVAL or not os.path.exists(f"/proc/{pid}"):
            return False
        self._refreshed[pid] = now
        return True
