"""User-space addresses to symbols, per process, through BCC's symbol cache (ELF, debuglink,
perf maps, demangling)."""
from __future__ import annotations

from ebpfprof.bcc_loader import import_bcc

__all__ = ["UserSymbols"]


class UserSymbols:
    """Per-process user-space symbols through BCC's symbol cache (ELF, debuglink, perf maps)."""

    # (pid, addr) answers kept: profiles hit the same few thousand addresses again and again,
    # and each BCC lookup is a ctypes call (~20 us a frame without this)
    MAX_ANSWERS = 1 << 16

    def __init__(self) -> None:
        self._bcc = import_bcc()
        self._caches: dict[int, object] = {}
        self._answers: dict[tuple[int, int], tuple[str, int, str]] = {}

    def resolve(self, pid: int, addr: int) -> tuple[str, int, str]:
        key = (pid, addr)
        answer = self._answers.get(key)
        if answer is None:
            if len(self._answers) >= self.MAX_ANSWERS:
                self._answers.clear()
            answer = self._answers[key] = self._lookup(pid, addr)
        return answer

    def _lookup(self, pid: int, addr: int) -> tuple[str, int, str]:
        cache = self._caches.get(pid)
        if cache is None:
            cache = self._bcc.SymbolCache(pid)
            self._caches[pid] = cache
        name, offset, module = cache.resolve(addr, demangle=True)
        symbol = name.decode(errors="replace") if name else "Unknown"
        dso = module.decode(errors="replace") if module else "[unknown]"
        return symbol, offset if name else 0, dso
