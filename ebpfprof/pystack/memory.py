"""Reading another process's memory: ``pread`` on ``/proc/PID/mem``, opened once per process.

The open file names the process's address space, not its pid: once that process has exited,
every read fails with ProcessGone, even if the pid is reused (the kernel checks the mm the
file was opened on). Needs ptrace-attach rights on the target (root here).
"""
from __future__ import annotations

import ctypes
import errno
import os
import struct

__all__ = ["ProcessMemory", "MemoryReadError", "ProcessGone"]

_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def _libc_process_vm_readv():
    try:
        fn = ctypes.CDLL(None, use_errno=True).process_vm_readv
    except (AttributeError, OSError):
        return None
    fn.restype = ctypes.c_ssize_t
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    return fn


_process_vm_readv = _libc_process_vm_readv()


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

    def read_many(self, addr: int, size: int, more: list[int]) -> list[bytes | None]:
        """``size`` bytes at ``addr`` and at each address of ``more``, in two system calls: a
        pread of the first (which fails, ProcessGone, once the process is gone: so the pid
        still names it) and one process_vm_readv for the rest. None where a range could not be
        read whole; each of ``more`` read alone if process_vm_readv cannot be used."""
        first = self.read(addr, size)
        if not more:
            return [first]
        buf = ctypes.create_string_buffer(size * len(more))
        local = (_IoVec * len(more))(*(_IoVec(ctypes.addressof(buf) + i * size, size) for i in range(len(more))))
        remote = (_IoVec * len(more))(*(_IoVec(a, size) for a in more))
        got = _process_vm_readv(self.pid, local, len(more), remote, len(more), 0) if _process_vm_readv else -1
        # process_vm_readv stops at the first range it cannot read (or cannot be used: -1):
        # the ranges after the ones it read whole are read alone
        whole = max(got, 0) // size
        raw = buf.raw
        out: list[bytes | None] = [raw[i * size:(i + 1) * size] for i in range(whole)]
        for a in more[whole:]:
            try:
                out.append(self.read(a, size))
            except ProcessGone:
                raise
            except MemoryReadError:
                out.append(None)
        return [first, *out]

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
        fd, self._fd = self._fd, None
        if fd is not None and os is not None:      # at interpreter exit, modules may be gone
            os.close(fd)

    def __enter__(self) -> ProcessMemory:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
