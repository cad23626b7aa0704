"""Names to addresses in a running process's executable: ELF symbol tables (functions and
variables; BCC's symbol cache finds functions only) and the executable's load bias.

Only ELF64 little-endian (x86-64, arm64): other files answer None.
"""
from __future__ import annotations

import os
import struct

__all__ = ["symbol_value", "load_bias", "process_symbol"]

_SHT_SYMTAB, _SHT_DYNSYM = 2, 11
_ET_DYN = 3
_PT_LOAD = 1


def _header(data: bytes):
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    (e_type, _machine, _version, _entry, e_phoff, e_shoff, _flags, _ehsize, e_phentsize, e_phnum,
     e_shentsize, e_shnum, _shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)
    return e_type, e_phoff, e_phentsize, e_phnum, e_shoff, e_shentsize, e_shnum


def symbol_value(path: str, name: str) -> int | None:
    """st_value of a defined symbol ``name`` in the file's .symtab or .dynsym."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    head = _header(data)
    if head is None:
        return None
    _type, _phoff, _phentsize, _phnum, shoff, shentsize, shnum = head
    want = name.encode()
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    for sh in sections:
        sh_type, sh_offset, sh_size, sh_link, sh_entsize = sh[1], sh[4], sh[5], sh[6], sh[9]
        if sh_type not in (_SHT_SYMTAB, _SHT_DYNSYM) or not sh_entsize:
            continue
        strtab = sections[sh_link][4]
        for off in range(sh_offset, sh_offset + sh_size, sh_entsize):
            st_name, _info, _other, st_shndx, st_value, _size = struct.unpack_from("<IBBHQQ", data, off)
            if st_shndx == 0 or not st_value:
                continue
            end = data.index(b"\0", strtab + st_name)
            if data[strtab + st_name:end] == want:
                return st_value
    return None


def load_bias(pid: int, path: str) -> int:
    """What to add to the file's addresses for process ``pid``: 0 for a fixed-address
    executable, else where its first segment is mapped minus that segment's address."""
    with open(path, "rb") as f:
        data = f.read(1 << 16)
    head = _header(data)
    if head is None or head[0] != _ET_DYN:
        return 0
    _type, phoff, phentsize, phnum = head[:4]
    first_vaddr = min((struct.unpack_from("<IIQQQQQQ", data, phoff + i * phentsize)[3]
                       for i in range(phnum)
                       if struct.unpack_from("<I", data, phoff + i * phentsize)[0] == _PT_LOAD), default=0)
    real = os.path.realpath(path)
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            parts = line.split()
            if len(parts) >= 6 and parts[5] == real and int(parts[2], 16) == 0:
                return int(parts[0].split("-")[0], 16) - (first_vaddr & ~0xFFF)
    return 0


def process_symbol(pid: int, name: str) -> int | None:
    """The run-time address of symbol ``name`` of process ``pid``'s executable, if it has one."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        value = symbol_value(exe, name)
        return None if value is None else value + load_bias(pid, exe)
    except OSError:
        return None
