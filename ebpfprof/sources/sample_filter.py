"""A profiler selector's sample filter in the kernel: its generated program
(``codegen/sample_filter.py``) compiled by BCC, loaded as BPF_PROG_TYPE_PERF_EVENT and set on
each of the selector's perf events (PERF_EVENT_IOC_SET_BPF). Events inherited by new threads
(-p) carry it too. ``close()`` unloads it; the perf events' fds hold it until they close.
"""
from __future__ import annotations

from ebpfprof.bcc_loader import import_bcc
from ebpfprof.errors import KernelError
from ebpfprof.kernel import perf_abi

__all__ = ["LoadedSampleFilter"]


class LoadedSampleFilter:
    def __init__(self, text: str, fn_name: str, selector: str, has_filter: bool = True) -> None:
        from ebpfprof.sources.bpf import _captured_stderr, _last_meaningful_line, _save_log

        bcc = import_bcc()
        self.selector = selector
        self.has_filter = has_filter      # else it is there for the Python stacks alone
        self._bpf = None
        try:
            with _captured_stderr() as log:
                self._bpf = bcc.BPF(text=text.encode())
                self._fn = self._bpf.load_func(fn_name.encode(), bcc.BPF.PERF_EVENT)
        except Exception:
            detail = log[0] if log else ""
            path = _save_log("sample-filter", detail, text)
            self.close()
            raise KernelError(f"{selector}: the kernel refused the --filter program: "
                              f"{_last_meaningful_line(detail)}",
                              hint=f"this is a bug in ebpfprof; the program and log are in {path}") from None

    def attach(self, perf_fd: int) -> None:
        try:
            perf_abi.set_bpf(perf_fd, self._fn.fd)
        except OSError as e:
            raise KernelError(f"{self.selector}: cannot set the --filter program on its perf event: "
                              f"{e.strerror}", hint="sample filters need Linux 4.9+") from None

    def counts(self) -> tuple[int, int]:
        """(samples seen, samples kept) so far, over every CPU."""
        import ctypes

        if self._bpf is None:
            return 0, 0
        table = self._bpf[b"ep_filter_counts"]
        return (sum(int(v) for v in table[ctypes.c_int(0)]), sum(int(v) for v in table[ctypes.c_int(1)]))

    def table(self, name: str):
        return self._bpf[name.encode()]

    def consume(self) -> None:
        """Read what its rings hold now (ep_py_ring: the callbacks given to open_ring_buffer)."""
        if self._bpf is not None:
            self._bpf.ring_buffer_consume()

    def python_lost(self) -> int:
        """Python stacks the side ring had no room for (bpf/python_sample.h)."""
        import ctypes

        if self._bpf is None:
            return 0
        try:
            table = self._bpf[b"ep_py_lost"]
        except KeyError:                      # a filter alone: no Python stacks
            return 0
        return sum(int(v) for v in table[ctypes.c_int(0)])

    def close(self) -> None:
        if self._bpf is not None:
            bpf, self._bpf = self._bpf, None
            bpf.cleanup()
