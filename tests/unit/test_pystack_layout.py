"""The layout tables against the C compiler (offsetof() on each CPython's internal headers,
where installed) and against 3.13's own _Py_DebugOffsets; the debug-offsets parser's refusals."""
from __future__ import annotations

import dataclasses
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from ebpfprof.pystack.layout import (DEBUG_COOKIE, LAYOUTS, DebugOffsetsError, PyLayout, debug_offsets_size,
                                     from_debug_offsets, layout_for, parse_debug_offsets)
from ebpfprof.pystack.detect import version_string
from ebpfprof.symbols.elf import elf_file

HEADERS = {
    "3.11.2 (Debian)": ((3, 11), "/usr/include/python3.11"),
    "3.11.7": ((3, 11), "/root/.pyenv/versions/3.11.7/include/python3.11"),
    "3.12.1": ((3, 12), "/root/.pyenv/versions/3.12.1/include/python3.12"),
    "3.13.0": ((3, 13), "/root/.pyenv/versions/3.13.0/include/python3.13"),
}
LIBPYTHON_3_13 = "/root/.pyenv/versions/3.13.0/lib/libpython3.13.so.1.0"

# PyLayout field -> C expression (per version where they differ)
_C = {
    "runtime_interpreters_head": "offsetof(_PyRuntimeState, interpreters.head)",
    "interp_next": "offsetof(PyInterpreterState, next)",
    "interp_threads_head": "offsetof(PyInterpreterState, threads.head)",
    "tstate_next": "offsetof(PyThreadState, next)",
    "tstate_native_thread_id": "offsetof(PyThreadState, native_thread_id)",
    "frame_previous": "offsetof(_PyInterpreterFrame, previous)",
    "frame_owner": "offsetof(_PyInterpreterFrame, owner)",
    "frame_owner_generator": "FRAME_OWNED_BY_GENERATOR",
    "code_units": "offsetof(PyVarObject, ob_size)",
    "code_firstlineno": "offsetof(PyCodeObject, co_firstlineno)",
    "code_filename": "offsetof(PyCodeObject, co_filename)",
    "code_name": "offsetof(PyCodeObject, co_name)",
    "code_qualname": "offsetof(PyCodeObject, co_qualname)",
    "code_linetable": "offsetof(PyCodeObject, co_linetable)",
    "code_firsttraceable": "offsetof(PyCodeObject, _co_firsttraceable)",
    "code_adaptive": "offsetof(PyCodeObject, co_code_adaptive)",
    "code_unit": "sizeof(_Py_CODEUNIT)",
    "object_type": "offsetof(PyObject, ob_type)",
    "type_name": "offsetof(PyTypeObject, tp_name)",
    "str_length": "offsetof(PyASCIIObject, length)",
    "str_state": "offsetof(PyASCIIObject, state)",
    "str_ascii_data": "sizeof(PyASCIIObject)",
    "str_compact_data": "sizeof(PyCompactUnicodeObject)",
    "bytes_size": "offsetof(PyVarObject, ob_size)",
    "bytes_data": "offsetof(PyBytesObject, ob_sval)",
}
_C_BY_VERSION = {
    (3, 11): {"runtime_tss_key": "offsetof(_PyRuntimeState, gilstate.autoTSSkey._key)",
              "tstate_frame.0": "offsetof(PyThreadState, cframe)",
              "tstate_frame.1": "offsetof(_PyCFrame, current_frame)",
              "frame_code": "offsetof(_PyInterpreterFrame, f_code)",
              "frame_instr": "offsetof(_PyInterpreterFrame, prev_instr)",
              "frame_is_entry": "offsetof(_PyInterpreterFrame, is_entry)"},
    (3, 12): {"runtime_tss_key": "offsetof(_PyRuntimeState, autoTSSkey._key)",
              "tstate_frame.0": "offsetof(PyThreadState, cframe)",
              "tstate_frame.1": "offsetof(_PyCFrame, current_frame)",
              "frame_code": "offsetof(_PyInterpreterFrame, f_code)",
              "frame_instr": "offsetof(_PyInterpreterFrame, prev_instr)",
              "frame_owner_skip": "FRAME_OWNED_BY_CSTACK"},
    (3, 13): {"runtime_tss_key": "offsetof(_PyRuntimeState, autoTSSkey._key)",
              "tstate_frame.0": "offsetof(PyThreadState, current_frame)",
              "frame_code": "offsetof(_PyInterpreterFrame, f_executable)",
              "frame_instr": "offsetof(_PyInterpreterFrame, instr_ptr)",
              "frame_owner_skip": "FRAME_OWNED_BY_CSTACK"},
}


def _compiled_offsets(include: str, exprs: dict[str, str], tmp_path: Path) -> dict[str, int]:
    lines = [f'  printf("{name} %zu\\n", (size_t)({expr}));' for name, expr in exprs.items()]
    src = tmp_path / "off.c"
    src.write_text("#define Py_BUILD_CORE 1\n#include <Python.h>\n#include <stddef.h>\n#include <stdio.h>\n"
                   '#include "internal/pycore_runtime.h"\n#include "internal/pycore_frame.h"\n'
                   '#include "internal/pycore_interp.h"\nint main(void) {\n' + "\n".join(lines) + "\n  return 0;\n}\n")
    exe = tmp_path / "off"
    # pyconfig.h of Debian's python3.11-dev lives in the multiarch directory
    subprocess.run(["gcc", "-w", f"-I{include}", f"-I{include}/internal", "-I/usr/include/x86_64-linux-gnu/python3.11",
                    str(src), "-o", str(exe)], check=True, capture_output=True, timeout=120)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return {name: int(value) for name, value in (line.split() for line in out.splitlines())}


def _table_value(layout: PyLayout, name: str) -> int:
    if name.startswith("tstate_frame."):
        return layout.tstate_frame[int(name.split(".")[1])]
    return getattr(layout, name)


@pytest.mark.parametrize("build", sorted(HEADERS))
def test_table_matches_the_headers(build, tmp_path):
    version, include = HEADERS[build]
    if not shutil.which("gcc"):
        pytest.skip("no gcc")
    if not Path(include, "internal", "pycore_frame.h").exists():
        pytest.skip(f"no internal headers of {build} at {include}")
    exprs = {**_C, **_C_BY_VERSION[version]}
    got = _compiled_offsets(include, exprs, tmp_path)
    layout = LAYOUTS[version]
    assert {n: _table_value(layout, n) for n in exprs} == got
    # every field is either checked above or has no C counterpart in this version
    checked = {n.split(".")[0] for n in exprs}
    unchecked = set(layout.names()) - checked
    assert unchecked <= {"frame_owner_skip", "frame_is_entry", "instr_is_current"}
    assert layout.frame_owner_skip == (-1 if version == (3, 11) else got["frame_owner_skip"])
    assert len(layout.tstate_frame) == (1 if version >= (3, 13) else 2)


def _debug_offsets_from_file() -> bytes:
    if not Path(LIBPYTHON_3_13).exists():
        pytest.skip(f"no {LIBPYTHON_3_13}")
    elf = elf_file(LIBPYTHON_3_13)
    offset = elf.file_offset(elf.symbol("_PyRuntime").value)     # the initializer, in .data
    with open(LIBPYTHON_3_13, "rb") as f:
        f.seek(offset)
        return f.read(debug_offsets_size((3, 13)))


def test_table_matches_3_13_debug_offsets():
    raw = _debug_offsets_from_file()
    from_target = from_debug_offsets(raw)
    assert from_target.source == "_Py_DebugOffsets"
    assert dataclasses.replace(from_target, source="table") == LAYOUTS[(3, 13)]
    members = parse_debug_offsets(raw)
    # the sub-struct sizes the table was made with (a changed struct would show here first)
    assert members["interpreter_frame.size"] == 80 and members["code_object.size"] == 208
    assert members["thread_state.size"] == 304 and members["unicode_object.asciiobject_size"] == 40
    assert members["runtime_state.size"] == elf_file(LIBPYTHON_3_13).symbol("_PyRuntime").size


def test_debug_offsets_refusals():
    raw = bytearray(_debug_offsets_from_file())
    with pytest.raises(DebugOffsetsError, match="cookie"):
        parse_debug_offsets(b"notdebug" + bytes(raw[8:]))
    with pytest.raises(DebugOffsetsError, match="truncated"):
        parse_debug_offsets(bytes(raw[:100]))
    struct.pack_into("<Q", raw, 8, 0x030E00F0)                   # 3.14: another struct layout
    with pytest.raises(DebugOffsetsError, match="3.14 has an unknown layout"):
        parse_debug_offsets(bytes(raw))
    struct.pack_into("<QQ", raw, 8, 0x030D00F0, 1)
    with pytest.raises(DebugOffsetsError, match="free-threaded"):
        from_debug_offsets(bytes(raw))
    assert raw[:8] == DEBUG_COOKIE


def test_layout_for_versions():
    assert layout_for(0x030B02F0) is LAYOUTS[(3, 11)]
    assert layout_for(0x030C01F0) is LAYOUTS[(3, 12)]
    assert layout_for(0x030D00F0) is LAYOUTS[(3, 13)]
    assert layout_for(0x030A0DF0) is None and layout_for(0x030E00F0) is None


def test_version_string():
    assert version_string(0x030C01F0) == "3.12.1"
    assert version_string(0x030D00A3) == "3.13.0a3"
    assert version_string(0x030B00C1) == "3.11.0rc1"
