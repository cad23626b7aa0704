"""Where CPython keeps a thread's frames: the byte offsets of every struct member the stack walk
(BPF or user space) and the code-object decoder read, per CPython version (3.11, 3.12, 3.13;
x86-64 and other LP64 targets, default non-debug, GIL builds).

The tables are ``offsetof()`` on each version's internal headers (``Include/internal/
pycore_{runtime,interp,frame,code}.h``), compiled with ``Py_BUILD_CORE`` against the 3.11.2
(Debian), 3.11.7, 3.12.1 and 3.13.0 headers on this machine; tests/unit/test_pystack_layout.py
recompiles that check where headers are installed. Offsets do not change within a minor
version (the internal ABI is frozen at the first release candidate).

From 3.13 on, CPython publishes most of them itself in ``_Py_DebugOffsets``, the first member
of ``_PyRuntime`` (cookie ``xdebugpy``). ``from_debug_offsets`` reads that struct and fills in
from the table only what it lacks (the TSS key, ``_co_firsttraceable``, non-ASCII str data).
The struct's own layout is itself per version: only the 3.13 layout is known here, and
``layout_for`` refuses versions it has no table for rather than guessing.

The walk, from a thread's ``PyThreadState *tstate``::

    frame = *(tstate + tstate_frame[0]) ; then frame = *(frame + tstate_frame[1]) ...
    while frame:
        if frame->owner == frame_owner_skip: skip          (3.12+: C-stack shim frames)
        record (frame->code, frame->instr); frame = frame->previous

and ``lasti = (instr - (code + code_adaptive)) // code_unit`` for every version: 3.11/3.12's
``prev_instr`` points at the last instruction *started* (for a caller, its CALL), 3.13's
``instr_ptr`` at the instruction being executed (the same CALL) — CPython computes lasti as
``ptr - _PyCode_CODE(code)`` in both (``_PyInterpreterFrame_LASTI``). ``instr_is_current``
records which of the two a version means; a frame whose lasti is below
``_co_firsttraceable`` has not reached its RESUME yet and tracebacks leave it out.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, fields, replace

__all__ = ["PyLayout", "LAYOUTS", "layout_for", "from_debug_offsets", "parse_debug_offsets", "DebugOffsetsError",
           "DEBUG_COOKIE", "debug_offsets_size"]


@dataclass(frozen=True)
class PyLayout:
    """Byte offsets inside CPython's structs for one minor version. -1: not in this version."""

    version: tuple[int, int]
    source: str                       # "table", or "_Py_DebugOffsets" when read from the target

    # _PyRuntimeState (the object _PyRuntime)
    runtime_tss_key: int              # gilstate.autoTSSkey._key (3.11); autoTSSkey._key (3.12+): pthread_key_t
    runtime_interpreters_head: int    # interpreters.head: PyInterpreterState *
    # PyInterpreterState
    interp_next: int                  # next: PyInterpreterState *
    interp_threads_head: int          # threads.head: PyThreadState *
    # PyThreadState
    tstate_next: int                  # next: PyThreadState *
    tstate_native_thread_id: int      # native_thread_id: unsigned long (the tid, in the thread's pid namespace)
    tstate_frame: tuple[int, ...]     # pointer hops to the innermost _PyInterpreterFrame *:
                                      # (cframe, current_frame) before 3.13, (current_frame,) after
    # _PyInterpreterFrame
    frame_code: int                   # f_code (3.11, 3.12) / f_executable (3.13): PyCodeObject *
    frame_previous: int               # previous: _PyInterpreterFrame *
    frame_instr: int                  # prev_instr (3.11, 3.12) / instr_ptr (3.13): _Py_CODEUNIT *
    frame_owner: int                  # owner: char (enum _frameowner)
    frame_owner_skip: int             # owner value of frames that are no Python call (FRAME_OWNED_BY_CSTACK), -1: none
    frame_owner_generator: int        # FRAME_OWNED_BY_GENERATOR
    frame_is_entry: int               # is_entry: bool (3.11 only; informational, the chain is continuous)
    instr_is_current: bool            # frame_instr points at the executing instruction (3.13), not the last one
    # PyCodeObject
    code_units: int                   # ob_size: number of _Py_CODEUNITs in co_code_adaptive
    code_firstlineno: int             # co_firstlineno: int
    code_filename: int                # co_filename: PyUnicodeObject *
    code_name: int                    # co_name: PyUnicodeObject *
    code_qualname: int                # co_qualname: PyUnicodeObject *
    code_linetable: int               # co_linetable: PyBytesObject *
    code_firsttraceable: int          # _co_firsttraceable: int (code units before RESUME)
    code_adaptive: int                # co_code_adaptive: the instructions, inline
    code_unit: int                    # sizeof(_Py_CODEUNIT)
    # PyObject / PyTypeObject
    object_type: int                  # ob_type
    type_name: int                    # tp_name: const char *
    # PyASCIIObject / PyCompactUnicodeObject / PyBytesObject
    str_length: int                   # length: Py_ssize_t (code points)
    str_state: int                    # state: bitfield (kind bits 2-4, compact bit 5, ascii bit 6)
    str_ascii_data: int               # sizeof(PyASCIIObject): data of a compact ASCII str
    str_compact_data: int             # sizeof(PyCompactUnicodeObject): data of a compact non-ASCII str
    bytes_size: int                   # ob_size: Py_ssize_t
    bytes_data: int                   # ob_sval

    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self) if f.name not in ("version", "source"))


_COMMON = dict(
    runtime_interpreters_head=40, interp_next=0, tstate_next=8,
    frame_owner_generator=1, code_units=16, code_filename=112, code_name=120, code_qualname=128,
    code_linetable=136, code_unit=2, object_type=8, type_name=24, str_length=16, str_state=32,
    bytes_size=16, bytes_data=32,
)

LAYOUTS: dict[tuple[int, int], PyLayout] = {
    (3, 11): PyLayout(
        version=(3, 11), source="table", **_COMMON,
        runtime_tss_key=596, interp_threads_head=16, tstate_native_thread_id=160, tstate_frame=(56, 8),
        frame_code=32, frame_previous=48, frame_instr=56, frame_owner=69, frame_owner_skip=-1,
        frame_is_entry=68, instr_is_current=False,
        code_firstlineno=72, code_firsttraceable=168, code_adaptive=184,
        str_ascii_data=48, str_compact_data=72,          # 3.11 still has the wstr fields
    ),
    (3, 12): PyLayout(
        version=(3, 12), source="table", **_COMMON,
        runtime_tss_key=1548, interp_threads_head=72, tstate_native_thread_id=144, tstate_frame=(56, 0),
        frame_code=0, frame_previous=8, frame_instr=56, frame_owner=70, frame_owner_skip=3,
        frame_is_entry=-1, instr_is_current=False,
        code_firstlineno=68, code_firsttraceable=176, code_adaptive=192,
        str_ascii_data=40, str_compact_data=56,
    ),
    (3, 13): PyLayout(
        version=(3, 13), source="table", **{**_COMMON, "runtime_interpreters_head": 632, "interp_next": 7264},
        runtime_tss_key=2164, interp_threads_head=7344, tstate_native_thread_id=160, tstate_frame=(72,),
        frame_code=0, frame_previous=8, frame_instr=56, frame_owner=70, frame_owner_skip=3,
        frame_is_entry=-1, instr_is_current=True,
        code_firstlineno=68, code_firsttraceable=184, code_adaptive=200,
        str_ascii_data=40, str_compact_data=56,
    ),
}


def layout_for(version_hex: int) -> PyLayout | None:
    """The table for ``PY_VERSION_HEX`` ``version_hex``, or None for a version without one."""
    return LAYOUTS.get(((version_hex >> 24) & 0xFF, (version_hex >> 16) & 0xFF))


# _Py_DebugOffsets (Include/internal/pycore_runtime.h, 3.13): char cookie[8], then uint64_t
# fields, each sub-struct starting with its own size. Only 3.13's member list is known.
DEBUG_COOKIE = b"xdebugpy"
_DEBUG_FIELDS_3_13 = (
    "version", "free_threaded",
    "runtime_state.size", "runtime_state.finalizing", "runtime_state.interpreters_head",
    "interpreter_state.size", "interpreter_state.id", "interpreter_state.next",
    "interpreter_state.threads_head", "interpreter_state.gc", "interpreter_state.imports_modules",
    "interpreter_state.sysdict", "interpreter_state.builtins", "interpreter_state.ceval_gil",
    "interpreter_state.gil_runtime_state", "interpreter_state.gil_runtime_state_enabled",
    "interpreter_state.gil_runtime_state_locked", "interpreter_state.gil_runtime_state_holder",
    "thread_state.size", "thread_state.prev", "thread_state.next", "thread_state.interp",
    "thread_state.current_frame", "thread_state.thread_id", "thread_state.native_thread_id",
    "thread_state.datastack_chunk", "thread_state.status",
    "interpreter_frame.size", "interpreter_frame.previous", "interpreter_frame.executable",
    "interpreter_frame.instr_ptr", "interpreter_frame.localsplus", "interpreter_frame.owner",
    "code_object.size", "code_object.filename", "code_object.name", "code_object.qualname",
    "code_object.linetable", "code_object.firstlineno", "code_object.argcount",
    "code_object.localsplusnames", "code_object.localspluskinds", "code_object.co_code_adaptive",
    "pyobject.size", "pyobject.ob_type",
    "type_object.size", "type_object.tp_name", "type_object.tp_repr", "type_object.tp_flags",
    "tuple_object.size", "tuple_object.ob_item", "tuple_object.ob_size",
    "list_object.size", "list_object.ob_item", "list_object.ob_size",
    "dict_object.size", "dict_object.ma_keys", "dict_object.ma_values",
    "float_object.size", "float_object.ob_fval",
    "long_object.size", "long_object.lv_tag", "long_object.ob_digit",
    "bytes_object.size", "bytes_object.ob_size", "bytes_object.ob_sval",
    "unicode_object.size", "unicode_object.state", "unicode_object.length",
    "unicode_object.asciiobject_size",
    "gc.size", "gc.collecting",
)
_DEBUG_FIELDS = {(3, 13): _DEBUG_FIELDS_3_13}

# PyLayout field <- _Py_DebugOffsets member; the rest comes from the table
_FROM_DEBUG = {
    "runtime_interpreters_head": "runtime_state.interpreters_head",
    "interp_next": "interpreter_state.next",
    "interp_threads_head": "interpreter_state.threads_head",
    "tstate_next": "thread_state.next",
    "tstate_native_thread_id": "thread_state.native_thread_id",
    "frame_code": "interpreter_frame.executable",
    "frame_previous": "interpreter_frame.previous",
    "frame_instr": "interpreter_frame.instr_ptr",
    "frame_owner": "interpreter_frame.owner",
    "code_filename": "code_object.filename",
    "code_name": "code_object.name",
    "code_qualname": "code_object.qualname",
    "code_linetable": "code_object.linetable",
    "code_firstlineno": "code_object.firstlineno",
    "code_adaptive": "code_object.co_code_adaptive",
    "object_type": "pyobject.ob_type",
    "type_name": "type_object.tp_name",
    "str_length": "unicode_object.length",
    "str_state": "unicode_object.state",
    "str_ascii_data": "unicode_object.asciiobject_size",
    "bytes_size": "bytes_object.ob_size",
    "bytes_data": "bytes_object.ob_sval",
}


class DebugOffsetsError(ValueError):
    """The bytes are not a _Py_DebugOffsets this module can read."""


def debug_offsets_size(version: tuple[int, int]) -> int:
    """Bytes of _Py_DebugOffsets for ``version`` (0 if its layout is unknown here)."""
    names = _DEBUG_FIELDS.get(version)
    return 8 + 8 * len(names) if names else 0


def parse_debug_offsets(raw: bytes) -> dict[str, int]:
    """The members of a _Py_DebugOffsets (the first bytes of ``_PyRuntime``) by dotted name."""
    if raw[:8] != DEBUG_COOKIE:
        raise DebugOffsetsError("no _Py_DebugOffsets cookie at the start of _PyRuntime")
    if len(raw) < 16:
        raise DebugOffsetsError("_Py_DebugOffsets truncated")
    version_hex = struct.unpack_from("<Q", raw, 8)[0]
    version = ((version_hex >> 24) & 0xFF, (version_hex >> 16) & 0xFF)
    names = _DEBUG_FIELDS.get(version)
    if names is None:
        raise DebugOffsetsError(f"_Py_DebugOffsets of Python {version[0]}.{version[1]} has an unknown layout")
    if len(raw) < debug_offsets_size(version):
        raise DebugOffsetsError("_Py_DebugOffsets truncated")
    return dict(zip(names, struct.unpack_from(f"<{len(names)}Q", raw, 8)))


def from_debug_offsets(raw: bytes) -> PyLayout:
    """A PyLayout from the target's own _Py_DebugOffsets, the table filling the gaps.
    DebugOffsetsError if the struct is not one of a version with a table, or says the build is
    free-threaded (its frames and objects differ)."""
    members = parse_debug_offsets(raw)
    version_hex = members["version"]
    table = layout_for(version_hex)
    if table is None:
        raise DebugOffsetsError(f"no table for Python {version_hex >> 24}.{(version_hex >> 16) & 0xFF}")
    if members["free_threaded"]:
        raise DebugOffsetsError("free-threaded CPython build (not supported)")
    values = {field: members[name] for field, name in _FROM_DEBUG.items()}
    values["tstate_frame"] = (members["thread_state.current_frame"],)
    # PyCompactUnicodeObject = PyASCIIObject + utf8_length + utf8 (3.12+)
    values["str_compact_data"] = members["unicode_object.asciiobject_size"] + 16
    return replace(table, source="_Py_DebugOffsets", **values)
