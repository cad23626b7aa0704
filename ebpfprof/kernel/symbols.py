"""Addresses to symbols: the kernel from /proc/kallsyms, user space through BCC's symbol cache.

Only used when a script reads ``_callchain`` (or prints an event with frames), never per event.
A frame is ``{'addr': int, 'symbol': str, 'offset': int, 'kernel': bool, 'dso': str}``.
"""
from __future__ import annotations

import bisect
from functools import lru_cache

__all__ = ["KernelSymbols", "UserSymbols", "CallchainResolver", "CONTEXT_KERNEL", "CONTEXT_USER"]

# perf's callchain context markers (PERF_CONTEXT_*), as u64
CONTEXT_HV = (1 << 64) - 32
CONTEXT_KERNEL = (1 << 64) - 128
CONTEXT_USER = (1 << 64) - 512
CONTEXT_MAX = (1 << 64) - 4095
KERNEL_DSO = "[kernel.kallsyms]"


class KernelSymbols:
    """/proc/kallsyms, sorted for bisection (text symbols only)."""

    def __init__(self, path: str = "/proc/kallsyms") -> None:
        addrs: list[int] = []
        names: list[str] = []
        modules: list[str] = []
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3 or parts[1] not in "tTwW":
                    continue
                addr = int(parts[0], 16)
                if addr == 0:
                    continue  # kptr_restrict hides addresses from us
                addrs.append(addr)
                names.append(parts[2])
                modules.append(parts[3].strip("[]") if len(parts) > 3 else "")
        order = sorted(range(len(addrs)), key=addrs.__getitem__)
        self._addrs = [addrs[i] for i in order]
        self._names = [names[i] for i in order]
        self._modules = [modules[i] for i in order]

    def __len__(self) -> int:
        return len(self._addrs)

    def resolve(self, addr: int) -> tuple[str, int, str]:
        """(symbol, offset, dso) for a kernel address."""
        i = bisect.bisect_right(self._addrs, addr) - 1
        if i < 0:
            return "Unknown", 0, KERNEL_DSO
        module = self._modules[i]
        return self._names[i], addr - self._addrs[i], f"[{module}]" if module else KERNEL_DSO

    def all_symbols(self):
        return zip(self._addrs, self._names, self._modules)


class UserSymbols:
    """Per-process user-space symbols through BCC's symbol cache (ELF, debuglink, perf maps)."""

    def __init__(self) -> None:
        from ..sources.bpf import import_bcc

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


class CallchainResolver:
    """Turns raw frames (with perf context markers) into frame dicts."""

    def __init__(self) -> None:
        self._kernel: KernelSymbols | None = None
        self._user: UserSymbols | None = None

    @property
    def kernel(self) -> KernelSymbols:
        if self._kernel is None:
            self._kernel = KernelSymbols()
        return self._kernel

    @property
    def user(self) -> UserSymbols:
        if self._user is None:
            self._user = UserSymbols()
        return self._user

    def __call__(self, event_class, pid: int, frames: tuple[int, ...]) -> list[dict]:
        out: list[dict] = []
        kernel = True
        for addr in frames:
            if addr >= CONTEXT_MAX:
                if addr == CONTEXT_KERNEL:
                    kernel = True
                elif addr == CONTEXT_USER:
                    kernel = False
                continue
            if kernel:
                symbol, offset, dso = self.kernel.resolve(addr)
            else:
                try:
                    symbol, offset, dso = self.user.resolve(pid, addr)
                except Exception:
                    symbol, offset, dso = "Unknown", 0, "[unknown]"
            out.append({"addr": addr, "symbol": symbol, "offset": offset, "kernel": kernel, "dso": dso})
        return out


@lru_cache(maxsize=1)
def default_resolver() -> CallchainResolver:
    return CallchainResolver()
