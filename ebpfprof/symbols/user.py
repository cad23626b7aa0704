"""User-space addresses to symbols, per process, through BCC's symbol cache (ELF, debuglink,
perf maps, demangling)."""
from __future__ import annotations

from ebpfprof.bcc_loader import import_bcc

__all__ = ["UserSymbols"]


class UserSymbols:
    """Per-process user-space symbols through BCC's symbol cache (ELF, debuglink, perf maps)."""

    def __init__(self) -> None:
        self._bcc = import_bcc()
        self._caches: dict[int, object] = {}

    def resolve(self, pid: int, addr: int) -> tuple[str, int, str]:
        cache = self._caches.get(pid)
        if cache is None:
            cache = self._bcc.SymbolCache(pid)
            self._caches[pid] = cache
        name, offset, module = cache.resolve(addr, demangle=True)
        symbol = name.decode(errors="replace") if name else "Unknown"
        dso = module.decode(errors="replace") if module else "[unknown]"
        return symbol, offset if name else 0, dso
