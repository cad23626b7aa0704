"""User-space addresses to symbols, per process, through BCC's symbol cache (ELF, debuglink,
perf maps, demangling)."""
from __future__ import annotations

import fcntl
import os
import time

from ebpfprof.bcc_loader import import_bcc

__all__ = ["UserSymbols"]


class UserSymbols:
    """Per-process user-space symbols through BCC's symbol cache (ELF, debuglink, perf maps).

    A process's cache reads /proc/PID/maps when it is made and keeps its files open, so it
    answers after the process exits: `preload` the processes a run knows at its start (-p),
    whose samples are decoded after the process may be gone. An address outside every known
    mapping (a library loaded since) refreshes the maps, at most once a second per process.

    BCC's cache re-reads the maps when the process runs ``exec``: the frames of its events from
    before the exec, decoded after it, are then looked up in the mappings kept by ``preload``
    (their files' ELF symbols)."""

    # (pid, addr) answers kept: profiles hit the same few thousand addresses again and again,
    # and each BCC lookup is a ctypes call (~20 us a frame without this)
    MAX_ANSWERS = 1 << 16
    REFRESH_INTERVAL = 1.0

    def __init__(self) -> None:
        self._bcc = import_bcc()
        self._caches: dict[int, object] = {}
        self._refreshed: dict[int, float] = {}
        self._answers: dict[tuple[int, int], tuple[str, int, str]] = {}
        self._before_exec: dict[int, MapsSnapshot] = {}

    def preload(self, pid: int, symbols: bool = False) -> None:
        """Read PID's mappings now, while it runs; with ``symbols``, its files' symbol tables
        too (BCC reads a file's on the first address looked up in it)."""
        cache = self._cache(pid)
        snapshot = MapsSnapshot.of(pid)
        if snapshot is not None:
            self._before_exec[pid] = snapshot
            if symbols:
                for start, _end, _offset, _path in snapshot.mappings:
                    cache.resolve(start, demangle=False)

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
            cache = self._caches[pid] = fds_kept(lambda: self._bcc.SymbolCache(pid))
            self._refreshed[pid] = time.monotonic()
        return cache

    def _lookup(self, pid: int, addr: int) -> tuple[str, int, str]:
        cache = self._cache(pid)
        name, offset, module = cache.resolve(addr, demangle=True)
        if module is None and self._may_refresh(pid):
            fds_kept(lambda: self._bcc.lib.bcc_symcache_refresh(cache.cache))
            name, offset, module = cache.resolve(addr, demangle=True)
        if module is None and pid in self._before_exec:
            found = self._before_exec[pid].resolve(addr)
            if found is not None:
                return found
        symbol = name.decode(errors="replace") if name else "Unknown"
        dso = module.decode(errors="replace") if module else "[unknown]"
        return symbol, offset if name else 0, dso

    def _may_refresh(self, pid: int) -> bool:
        now = time.monotonic()
        if now - self._refreshed.get(pid, 0.0) < self.REFRESH_INTERVAL or not os.path.exists(f"/proc/{pid}"):
            return False
        self._refreshed[pid] = now
        return True


class MapsSnapshot:
    """A process's file mappings as ``preload`` saw them, to name addresses of an image the
    process has since replaced by ``exec`` (BCC's cache then knows only the new one)."""

    def __init__(self, mappings: list[tuple[int, int, int, str]]) -> None:
        self.mappings = mappings          # (start, end, file offset, path)

    @classmethod
    def of(cls, pid: int) -> "MapsSnapshot | None":
        try:
            with open(f"/proc/{pid}/maps") as f:
                lines = f.read().splitlines()
        except OSError:
            return None
        mappings = []
        for line in lines:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith("/") and "x" in parts[1]:
                start, end = (int(x, 16) for x in parts[0].split("-"))
                mappings.append((start, end, int(parts[2], 16), parts[5]))
        return cls(mappings)

    def resolve(self, addr: int) -> tuple[str, int, str] | None:
        """(symbol, offset, dso) from the ELF symbols of the file mapped at ``addr``, if any."""
        from ebpfprof.symbols.elf import NotElf, elf_file

        for start, end, file_offset, path in self.mappings:
            if start <= addr < end:
                try:
                    elf = elf_file(path)
                except (OSError, NotElf):
                    return None
                vaddr = elf.address_of_offset(addr - start + file_offset)
                func = elf.function_at(vaddr) if vaddr is not None else None
                if func is None:
                    return None
                return func.name, vaddr - func.value, path
        return None


def fds_kept(call):
    """``call()``, with every fd of this process that it closes put back.

    libbcc 0.26 reads a process's perf map (/tmp/perf-PID.map) through a ProcSyms::ModulePath
    whose fd is left uninitialized when the file does not exist, and whose destructor closes
    it: whatever fd that garbage names. Here it was 1, our stdout (a script's print() then
    failed with EBADF, and tracing -p processes delivered nothing). Each fd is duplicated
    first (a few dozen dups; symbol caches are made once a process and refreshed at most
    once a second), and one found closed afterwards gets its duplicate back."""
    listed = [int(name) for name in os.listdir("/proc/self/fd")]
    above = max(listed, default=2) + 1      # copies above every listed fd: none is mistaken for one
    saved = {}
    for fd in listed:
        try:
            saved[fd] = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, above)
        except OSError:                     # the listing's own fd, closed by now
            pass
    try:
        return call()
    finally:
        for fd, copy in saved.items():
            try:
                os.fstat(fd)
            except OSError:
                os.dup2(copy, fd, inheritable=fd <= 2)
            os.close(copy)
