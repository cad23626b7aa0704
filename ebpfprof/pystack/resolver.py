"""(code object, instruction pointer) pairs read by the stack walk -> ``PyFrame(qualname,
filename, line)``, reading each code object from the target's memory once (CPython 3.11-3.13;
offsets from the target's PyLayout).

A code object is cached per process under its address, checked on every use against
``co_firstlineno`` and its name/file/line-table pointers (one small read of the object's
header), so an address reused by another code object is read afresh. Call ``resolve`` right
after the event is read: the code object is then still there. Once the process is gone (its
memory cannot be read) the cached entries answer alone, unchecked, and a code object never seen
before resolves to ``UNKNOWN`` (``[unknown]``): a wrong frame is never made up.

A frame whose instruction is before ``_co_firsttraceable`` (pushed, not yet at its RESUME) is
left out, as CPython's tracebacks do (``_PyFrame_IsIncomplete``), and so is one that runs
``None`` (3.13's C-stack entry frame, should a walk not skip it by its owner). Any other
object that is not a code object (a torn read, a freed frame) gives ``UNKNOWN``.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from ebpfprof.pystack.detect import PyTarget
from ebpfprof.pystack.linetable import LineTable, LinetableError
from ebpfprof.pystack.memory import MemoryReadError, ProcessGone

__all__ = ["PyFrame", "PyFrameResolver", "UNKNOWN"]

_MAX_STR_CHARS = 1024
_MAX_LINETABLE = 1 << 20
_MAX_CODES_PER_PROCESS = 1 << 16


@dataclass(frozen=True)
class PyFrame:
    qualname: str                # co_qualname: "Walker.run", "outer.<locals>.inner", "<module>"
    filename: str                # co_filename
    line: int | None             # the line of the instruction; None if it has no location

    def __str__(self) -> str:
        return f"{self.qualname} ({self.filename}:{self.line})"


UNKNOWN = PyFrame("[unknown]", "", None)
_RUNS_NONE = object()         # _code(): the frame runs None (3.13's entry frame), no Python code
_UNREAD = object()            # _code(): its header is to be read now


@dataclass(frozen=True)
class _Code:
    identity: tuple[int, int, int, int, int]    # firstlineno, qualname, filename, linetable pointers, units
    qualname: str
    filename: str
    start: int                                  # address of co_code_adaptive
    units: int
    firsttraceable: int
    table: LineTable


class PyFrameResolver:
    """Resolves the pairs of any number of processes; one per run.

        >>> resolver = PyFrameResolver()
        >>> resolver.resolve(target, [(0x7f10c2a1b230, 0x7f10c2a1b2f6)])    # doctest: +SKIP
        [PyFrame(qualname='Walker.run', filename='/work/app.py', line=42)]
    """

    def __init__(self) -> None:
        self._codes: dict[int, dict[int, _Code]] = {}        # pid -> code address -> _Code
        self._code_types: dict[int, int] = {}                 # pid -> address of PyCode_Type

    def resolve(self, target: PyTarget, pairs) -> list[PyFrame]:
        """The frames of ``pairs`` (in their order), incomplete frames left out."""
        out = []
        for code, instr in pairs:
            frame = self.frame(target, code, instr)
            if frame is not None:
                out.append(frame)
        return out

    def frame(self, target: PyTarget, code_addr: int, instr: int, header=None) -> PyFrame | None:
        """One pair's frame; None for a frame not yet at its first traceable instruction, or
        one that runs None instead of a code object (3.13's entry frame, owned by the C stack,
        if the walk did not skip it by its owner); UNKNOWN for any other object."""
        code = self._code(target, code_addr, _UNREAD if header is None else header)
        if code is _RUNS_NONE:
            return None
        if code is None:
            return UNKNOWN
        lasti = (instr - code.start) // target.layout.code_unit
        if lasti < code.firsttraceable:
            return None
        return PyFrame(code.qualname, code.filename, code.table.line(lasti) if lasti < code.units else None)

    def forget(self, pid: int) -> None:
        """Drop what is cached for process ``pid`` (it exited)."""
        self._codes.pop(pid, None)
        self._code_types.pop(pid, None)

    def frames(self, target: PyTarget, pairs: list[tuple[int, int]]) -> list[PyFrame | None]:
        """``frame()`` of each pair, the code objects' headers read in two system calls
        (ProcessMemory.read_many) rather than one each: the checks are the same."""
        headers: dict[int, bytes | None] = {}
        addrs = list(dict.fromkeys(code for code, _ in pairs if code and code != target.none_addr))
        if addrs and not target.memory.gone:
            try:
                got = target.memory.read_many(addrs[0], target.layout.code_adaptive, addrs[1:])
                headers = dict(zip(addrs, got))
            except MemoryReadError:      # the first is unreadable, or the process is gone:
                headers = {}             # each on its own, as frame() does
        return [self.frame(target, code, instr, headers.get(code)) for code, instr in pairs]

    def _code(self, target: PyTarget, addr: int, header=_UNREAD) -> _Code | None:
        known = self._codes.setdefault(target.pid, {})
        cached = known.get(addr)
        if addr == target.none_addr and addr:
            return _RUNS_NONE
        if target.memory.gone:
            return cached
        lay = target.layout
        try:
            if header is _UNREAD:
                header = target.memory.read(addr, lay.code_adaptive)
            identity = _identity(header, lay)
            if cached is not None and cached.identity == identity:
                return cached
            if not self._is_code(target, struct.unpack_from("<Q", header, lay.object_type)[0]):
                return None
            code = self._read_code(target, addr, header, identity)
        except ProcessGone:
            return cached
        except (MemoryReadError, LinetableError, UnicodeDecodeError):
            return None                                 # a torn or stale pointer: no frame made up
        if len(known) >= _MAX_CODES_PER_PROCESS:
            known.clear()
        known[addr] = code
        return code

    def _is_code(self, target: PyTarget, type_addr: int) -> bool:
        if self._code_types.get(target.pid) == type_addr:
            return True
        name_ptr = target.memory.u64(type_addr + target.layout.type_name)
        if target.memory.cstring(name_ptr, 16) != b"code":
            return False
        self._code_types[target.pid] = type_addr
        return True

    def _read_code(self, target: PyTarget, addr: int, header: bytes, identity) -> _Code:
        lay = target.layout
        firstlineno, qualname_ptr, filename_ptr, linetable_ptr, units = identity
        firsttraceable = struct.unpack_from("<i", header, lay.code_firsttraceable)[0]
        return _Code(identity, _read_str(target, qualname_ptr), _read_str(target, filename_ptr),
                     addr + lay.code_adaptive, units, firsttraceable,
                     LineTable(_read_bytes(target, linetable_ptr), firstlineno))


def _identity(header: bytes, lay) -> tuple[int, int, int, int, int]:
    return (struct.unpack_from("<i", header, lay.code_firstlineno)[0],
            struct.unpack_from("<Q", header, lay.code_qualname)[0],
            struct.unpack_from("<Q", header, lay.code_filename)[0],
            struct.unpack_from("<Q", header, lay.code_linetable)[0],
            struct.unpack_from("<q", header, lay.code_units)[0])


def _read_str(target: PyTarget, addr: int) -> str:
    """A compact str object (what code objects hold) -> str."""
    lay, mem = target.layout, target.memory
    head = mem.read(addr, lay.str_compact_data)
    length = struct.unpack_from("<q", head, lay.str_length)[0]
    state = struct.unpack_from("<I", head, lay.str_state)[0]
    kind, compact, ascii_ = (state >> 2) & 7, (state >> 5) & 1, (state >> 6) & 1
    if not compact or kind not in (1, 2, 4) or not 0 <= length <= _MAX_STR_CHARS:
        raise MemoryReadError(0, f"not a compact str at {addr:#x}")
    data = mem.read(addr + (lay.str_ascii_data if ascii_ else lay.str_compact_data), length * kind)
    return data.decode({1: "latin-1", 2: "utf-16-le", 4: "utf-32-le"}[kind])


def _read_bytes(target: PyTarget, addr: int) -> bytes:
    lay, mem = target.layout, target.memory
    size = struct.unpack_from("<q", mem.read(addr + lay.bytes_size, 8))[0]
    if not 0 <= size <= _MAX_LINETABLE:
        raise MemoryReadError(0, f"not a bytes object at {addr:#x}")
    return mem.read(addr + lay.bytes_data, size) if size else b""
