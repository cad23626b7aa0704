"""Raw callchains (perf context markers and addresses) to frame dicts.

Only used when a script reads ``_callchain`` (or prints an event with frames), never per event.
A frame is ``{'addr': int, 'symbol': str, 'offset': int, 'kernel': bool, 'dso': str}``.
"""
from __future__ import annotations

import sys
from functools import lru_cache

from ebpfprof.symbols.kernel import KernelSymbols
from ebpfprof.symbols.python import CONTEXT_PYTHON, merge_python_frames
from ebpfprof.symbols.user import UserSymbols

__all__ = ["CallchainResolver", "default_resolver", "CONTEXT_KERNEL", "CONTEXT_USER"]

# perf's callchain context markers (PERF_CONTEXT_*), as u64
CONTEXT_HV = (1 << 64) - 32
CONTEXT_KERNEL = (1 << 64) - 128
CONTEXT_USER = (1 << 64) - 512
CONTEXT_MAX = (1 << 64) - 4095
# Where kernel addresses begin (x86-64 and arm64 both keep the kernel in the top half)
KERNEL_SPACE_START = 1 << 63


class CallchainResolver:
    """Turns raw frames (with perf context markers) into frame dicts."""

    def __init__(self) -> None:
        self._kernel: KernelSymbols | None = None
        self._user: UserSymbols | None = None
        self._warned = False
        # --python-callchain: the run's CPython processes (symbols/python.py), else None
        self.python = None

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

    def address(self, pid: int, addr: int) -> tuple[str, int, str]:
        """(symbol, offset, dso) of one address of process ``pid`` (a kernel one if it is in
        the kernel's half of the address space)."""
        if addr >= KERNEL_SPACE_START:
            return self.kernel.resolve(addr)
        return self._user_frame(pid, addr)

    def _user_frame(self, pid: int, addr: int) -> tuple[str, int, str]:
        try:
            return self.user.resolve(pid, addr)
        except Exception as e:       # BCC failing for one process must not fail the handler
            if not self._warned:
                self._warned = True
                sys.stderr.write(f"ebpfprof: cannot read the symbols of process {pid}: "
                                 f"{type(e).__name__}: {e} (its frames show as Unknown)\n")
            return "Unknown", 0, "[unknown]"

    def __call__(self, event_class, pid: int, frames: tuple[int, ...], event=None) -> list[dict]:
        python_words = None
        if self.python is not None and CONTEXT_PYTHON in frames:
            at = frames.index(CONTEXT_PYTHON)
            frames, python_words = frames[:at], list(frames[at + 1:])
        elif self.python is not None and event is not None and getattr(event_class.info, "sample", None):
            # a profiler's sample: its Python stack is in the side ring (bpf/python_sample.h)
            python_words = self.python.side_words(event._cpu, event._tid, event.get("ip", 0), event._time)
        if python_words is not None:     # first: the code objects die with the process
            runs, truncated = self.python.segments(pid, python_words)
        out = self._native(pid, frames)
        if python_words is not None:
            kernel = [f for f in out if f["kernel"]]
            out = kernel + merge_python_frames(out[len(kernel):], runs, truncated)
        return out

    def _native(self, pid: int, frames: tuple[int, ...]) -> list[dict]:
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
                symbol, offset, dso = self._user_frame(pid, addr)
            out.append({"addr": addr, "symbol": symbol, "offset": offset, "kernel": kernel, "dso": dso})
        return out


@lru_cache(maxsize=1)
def default_resolver() -> CallchainResolver:
    return CallchainResolver()
