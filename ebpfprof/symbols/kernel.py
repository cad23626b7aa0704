"""Kernel addresses to symbols, from /proc/kallsyms."""
from __future__ import annotations

import bisect

__all__ = ["KernelSymbols", "KERNEL_DSO"]

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

    def address_of(self, name: str) -> int | None:
        """The address of text symbol ``name`` (the first, if several share the name)."""
        for addr, sym in zip(self._addrs, self._names):
            if sym == name:
                return addr
        return None

    def all_symbols(self):
        return zip(self._addrs, self._names, self._modules)
