"""Reading another process's memory: ``pread`` on ``/proc/PID/mem``, opened once per process.

The open file names the process's address space, not its pid: once that process has exited,
every read fails with ProcessGone, even if the pid is reused (the kernel checks the mm the
file was opened on). Needs ptrace-attach rights on the target (root here).
"""
from __future__ import annotations

import errno
import os
import struct

__all__ = ["ProcessMemory", "MemoryReadError", "ProcessGone"]

_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")


class MemoryReadError(OSError):
    """The address range is not readable in the process."""


class ProcessGone(MemoryReadError):
    """The process (its address space) no longer exists."""


class ProcessMemory:
    """The memory of process ``pid``. OSError from the constructor if it cannot be opened."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._fd: int | None = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
        self.gone = False

    def read(self, addr: int, size: int) -> bytes:
        """Exactly ``size`` bytes at ``addr``; MemoryReadError or ProcessGone otherwise."""
        if self._fd is None or self.gone:
            raise ProcessGone(errno.ESRCH, f"process {self.pid} is gone")
        if not 0 < addr < 1 << 63 or size < 0:
            raise MemoryReadError(errno.EFAULT, f"bad address {addr:#x} in process {self.pid}")
        try:
            data = os.pread(self._fd, size, addr)
        except OSError as e:
            if e.errno == errno.ESRCH:
                self.gone = True
                raise ProcessGone(errno.ESRCH, f"process {self.pid} is gone") from None
            raise MemoryReadError(e.errno, f"cannot read {size} bytes at {addr:#x} in process {self.pid}") from None
        if len(data) == size:
            return data
        if not data and size:
            # mem_rw() reads nothing once the mm is gone; an unmapped page of a live one is EIO
            self.gone = True
            raise ProcessGone(errno.ESRCH, f"process {self.pid} is gone")
        raise MemoryReadError(errno.EFAULT, f"short read at {addr:#x} in process {self.pid}")

    def u64(self, addr: int) -> int:
        return _U64.unpack(self.read(addr, 8))[0]

    def u32(self, addr: int) -> int:
        return _U32.unpack(self.read(addr, 4))[0]

    def i32(self, addr: int) -> int:
        return _I32.unpack(self.read(addr, 4))[0]

    def u8(self, addr: int) -> int:
        return self.read(addr, 1)[0]

    def cstring(self, addr: int, limit: int = 256) -> bytes:
        """A NUL-terminated string of at most ``limit`` bytes (read a page at a time)."""
        out = b""
        while len(out) < limit:
            chunk_end = min((addr + len(out) + 4096) & ~4095, addr + limit)
            chunk = self.read(addr + len(out), chunk_end - addr - len(out))
            nul = chunk.find(b"\0")
            if nul >= 0:
                return out + chunk[:nul]
            out += chunk
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ProcessMemory:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
