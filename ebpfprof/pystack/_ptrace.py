"""A stopped thread's FS base (x86-64), through ptrace: PTRACE_SEIZE, PTRACE_INTERRUPT, wait,
PTRACE_GETREGS (``user_regs_struct.fs_base``), PTRACE_DETACH. The thread resumes as it was (a
blocking syscall is restarted). For the user-space reference walk only: the BPF walk reads
``task->thread.fsbase`` at the event.

ptrace requests must come from the thread that attached: call this from one thread.
"""
from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["fs_base"]

_PTRACE_GETREGS, _PTRACE_DETACH, _PTRACE_SEIZE, _PTRACE_INTERRUPT = 12, 17, 0x4206, 0x4207
_WALL = 0x40000000
_USER_REGS_WORDS = 27          # struct user_regs_struct (sys/user.h, x86-64)
_FS_BASE_WORD = 21             # r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss fs_base

_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.restype = ctypes.c_long
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]


def _ptrace(request: int, tid: int, data=None) -> None:
    if _libc.ptrace(request, tid, None, data) == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"ptrace({request:#x}, {tid}): {os.strerror(err)}")


def fs_base(tid: int) -> int:
    """The FS base register of thread ``tid`` (host tid). OSError if it cannot be traced."""
    if platform.machine() != "x86_64":
        raise OSError(f"fs_base: x86-64 only, not {platform.machine()}")
    _ptrace(_PTRACE_SEIZE, tid)
    try:
        _ptrace(_PTRACE_INTERRUPT, tid)
        os.waitpid(tid, _WALL)
        regs = (ctypes.c_ulonglong * _USER_REGS_WORDS)()
        _ptrace(_PTRACE_GETREGS, tid, ctypes.addressof(regs))
        return regs[_FS_BASE_WORD]
    finally:
        try:
            _ptrace(_PTRACE_DETACH, tid)
        except OSError:
            pass
