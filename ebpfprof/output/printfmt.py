"""Render a tracepoint record with its own ``print fmt``, through libtraceevent.

libtraceevent (Debian ``libtraceevent1``) is the implementation perf and trace-cmd use for
``print fmt`` (``__print_symbolic``, ``__print_flags``, ``__get_str``, ``%pS`` ...), so our
``event.print()`` reads exactly like theirs. Called only from ``event.print()``, never per event,
so ctypes is fine here.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

from ebpfprof.errors import MissingDependency
from ebpfprof.kernel.event_format import EventFormat

__all__ = ["TraceEventRenderer", "libtraceevent"]


class _TepRecord(ctypes.Structure):
    _fields_ = [
        ("ts", ctypes.c_ulonglong),
        ("offset", ctypes.c_ulonglong),
        ("missed_events", ctypes.c_longlong),
        ("record_size", ctypes.c_int),
        ("size", ctypes.c_int),
        ("data", ctypes.c_void_p),
        ("cpu", ctypes.c_int),
        ("ref_count", ctypes.c_int),
        ("locked", ctypes.c_int),
        ("priv", ctypes.c_void_p),
    ]


class _TraceSeq(ctypes.Structure):
    _fields_ = [
        ("buffer", ctypes.c_char_p),
        ("buffer_size", ctypes.c_uint),
        ("len", ctypes.c_uint),
        ("readpos", ctypes.c_uint),
        ("state", ctypes.c_int),
    ]


@lru_cache(maxsize=1)
def libtraceevent() -> ctypes.CDLL:
    name = ctypes.util.find_library("traceevent") or "libtraceevent.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        raise MissingDependency("libtraceevent is not installed (needed by event.print())",
                                hint="install it: apt-get install libtraceevent1") from None
    lib.tep_alloc.restype = ctypes.c_void_p
    lib.tep_free.argtypes = [ctypes.c_void_p]
    lib.tep_parse_event.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    lib.tep_parse_event.restype = ctypes.c_int
    lib.tep_set_long_size.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.tep_set_page_size.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.tep_set_file_bigendian.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.tep_set_local_bigendian.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.tep_register_function.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ulonglong,
                                          ctypes.c_char_p]
    lib.trace_seq_init.argtypes = [ctypes.POINTER(_TraceSeq)]
    lib.trace_seq_destroy.argtypes = [ctypes.POINTER(_TraceSeq)]
    lib.trace_seq_terminate.argtypes = [ctypes.POINTER(_TraceSeq)]
    lib.tep_print_event.restype = None
    return lib


class TraceEventRenderer:
    """Formats records of the formats it was given; one libtraceevent handle per run."""

    def __init__(self, formats: list[EventFormat], kernel_symbols=None) -> None:
        import sys

        self._lib = libtraceevent()
        self._tep = self._lib.tep_alloc()
        if not self._tep:
            raise MemoryError("tep_alloc failed")
        self._lib.tep_set_long_size(self._tep, ctypes.sizeof(ctypes.c_long))
        self._lib.tep_set_page_size(self._tep, 4096)
        little = sys.byteorder == "little"
        self._lib.tep_set_file_bigendian(self._tep, 0 if little else 1)
        self._lib.tep_set_local_bigendian(self._tep, 0 if little else 1)
        self._parsed: set[int] = set()
        self._symbols_loaded = False
        self._kernel_symbols = kernel_symbols
        for fmt in formats:
            self.add(fmt)

    def add(self, fmt: EventFormat) -> bool:
        if fmt.id in self._parsed:
            return True
        text = fmt.text.encode()
        rc = self._lib.tep_parse_event(self._tep, text, len(text), fmt.system.encode())
        if rc == 0:
            self._parsed.add(fmt.id)
            if "%pS" in fmt.print_fmt or "%ps" in fmt.print_fmt or "%pB" in fmt.print_fmt:
                self._load_kernel_symbols()
            return True
        return False

    def _load_kernel_symbols(self) -> None:
        if self._symbols_loaded or self._kernel_symbols is None:
            return
        self._symbols_loaded = True
        for addr, name, module in self._kernel_symbols.all_symbols():
            self._lib.tep_register_function(self._tep, name.encode(), addr,
                                            module.encode() if module else None)

    def render(self, fmt: EventFormat, raw: bytes, cpu: int = 0, ts: int = 0) -> str:
        """The fields of ``raw`` as its print fmt shows them; a plain field list if unparsable."""
        if fmt.id not in self._parsed and not self.add(fmt):
            return ""
        buf = ctypes.create_string_buffer(raw, len(raw))
        record = _TepRecord(ts=ts, size=len(raw), record_size=len(raw),
                            data=ctypes.cast(buf, ctypes.c_void_p), cpu=cpu, locked=1)
        seq = _TraceSeq()
        self._lib.trace_seq_init(ctypes.byref(seq))
        try:
            self._lib.tep_print_event(self._tep, ctypes.byref(seq), ctypes.byref(record),
                                      b"%s", b"INFO")
            self._lib.trace_seq_terminate(ctypes.byref(seq))
            text = ctypes.string_at(seq.buffer, seq.len).decode(errors="backslashreplace")
        finally:
            self._lib.trace_seq_destroy(ctypes.byref(seq))
        return text

    def close(self) -> None:
        if self._tep:
            self._lib.tep_free(self._tep)
            self._tep = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
