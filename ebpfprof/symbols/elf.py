"""ELF files: their symbol tables (functions and variables; BCC's symbol cache finds functions
only), their loadable segments, and where a file's addresses land in a running process.

Used for names to addresses: a breakpoint on a variable of the -p process, a uprobe on a
function of a binary (uprobes take a file offset, so a symbol's address is mapped back
through the segment that holds it).

Only ELF64 little-endian (x86-64, arm64): other files are refused with NotElf.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["ElfFile", "ElfSymbol", "NotElf", "elf_file", "symbol_value", "load_bias", "process_symbol"]

_SHT_SYMTAB, _SHT_DYNSYM, _SHT_GNU_VERSYM = 2, 11, 0x6FFFFFFF
_ET_EXEC, _ET_DYN = 2, 3
_PT_LOAD = 1
_PF_X = 1
STT_OBJECT, STT_FUNC, STT_GNU_IFUNC = 1, 2, 10


class NotElf(ValueError):
    """The file is not an ELF64 little-endian object."""


@dataclass(frozen=True)
class ElfSymbol:
    name: str
    value: int           # st_value: the address in the file's own address space
    size: int
    type: int            # STT_*

    @property
    def is_function(self) -> bool:
        return self.type in (STT_FUNC, STT_GNU_IFUNC)


@dataclass(frozen=True)
class _Segment:
    vaddr: int
    offset: int
    filesz: int
    executable: bool


class ElfFile:
    """One ELF file read once: ``symbols`` by name (.symtab first, then .dynsym), PT_LOAD
    segments, and whether it is position independent (ET_DYN)."""

    def __init__(self, path: str) -> None:
        self.path = path
        with open(path, "rb") as f:
            data = f.read()
        if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise NotElf(f"{path} is not an ELF64 little-endian file")
        (e_type, _machine, _version, _entry, e_phoff, e_shoff, _flags, _ehsize, e_phentsize,
         e_phnum, e_shentsize, e_shnum, _shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)
        self.type = e_type
        self.segments = tuple(self._segments(data, e_phoff, e_phentsize, e_phnum))
        self.symbols = self._symbols(data, e_shoff, e_shentsize, e_shnum)
        # not stripped: nm lists .symtab; of a stripped file only nm -D lists anything
        self.has_symtab = any(struct.unpack_from("<I", data, e_shoff + i * e_shentsize + 4)[0] == _SHT_SYMTAB
                              for i in range(e_shnum)) if e_shoff else False

    @property
    def position_independent(self) -> bool:
        return self.type == _ET_DYN

    @staticmethod
    def _segments(data: bytes, phoff: int, phentsize: int, phnum: int):
        for i in range(phnum):
            p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, _memsz, _align = \
                struct.unpack_from("<IIQQQQQQ", data, phoff + i * phentsize)
            if p_type == _PT_LOAD:
                yield _Segment(p_vaddr, p_offset, p_filesz, bool(p_flags & _PF_X))

    @staticmethod
    def _symbols(data: bytes, shoff: int, shentsize: int, shnum: int) -> dict[str, ElfSymbol]:
        if not shoff:
            return {}
        sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
        # .gnu.version of each .dynsym (by its index): one u16 per symbol, 0x8000 = hidden
        versyms = {sh[6]: sh for sh in sections if sh[1] == _SHT_GNU_VERSYM}
        found: dict[str, ElfSymbol] = {}
        hidden: set[str] = set()      # names whose entry in ``found`` is a non-default version
        # .symtab is the fuller table; .dynsym fills in what a stripped file still exports
        for want in (_SHT_SYMTAB, _SHT_DYNSYM):
            for index, sh in enumerate(sections):
                sh_type, sh_offset, sh_size, sh_link, sh_entsize = sh[1], sh[4], sh[5], sh[6], sh[9]
                if sh_type != want or not sh_entsize or sh_link >= len(sections):
                    continue
                strtab = sections[sh_link][4]
                versym = versyms.get(index)
                for n, off in enumerate(range(sh_offset, sh_offset + sh_size, sh_entsize)):
                    st_name, info, _other, st_shndx, st_value, st_size = struct.unpack_from("<IBBHQQ", data, off)
                    if st_shndx == 0 or not st_value or not st_name:
                        continue
                    end = data.index(b"\0", strtab + st_name)
                    name = data[strtab + st_name:end].decode(errors="replace")
                    # A name has versions (memcpy@GLIBC_2.2.5, memcpy@@GLIBC_2.14): the plain
                    # name is the default one (@@, or not hidden in .gnu.version), as the
                    # linker binds it; a hidden version stands in only when there is no other.
                    is_hidden = "@" in name and "@@" not in name
                    if versym is not None and versym[4] + 2 * n + 2 <= len(data):
                        is_hidden = is_hidden or bool(struct.unpack_from("<H", data, versym[4] + 2 * n)[0] & 0x8000)
                    name = name.split("@", 1)[0]
                    if name not in found or (name in hidden and not is_hidden):
                        found[name] = ElfSymbol(name, st_value, st_size, info & 0xF)
                        if is_hidden:
                            hidden.add(name)
                        else:
                            hidden.discard(name)
        return found

    def symbol(self, name: str) -> ElfSymbol | None:
        return self.symbols.get(name)

    def function_names(self) -> list[str]:
        return [s.name for s in self.symbols.values() if s.is_function]

    def file_offset(self, vaddr: int) -> int | None:
        """The file offset of address ``vaddr`` (what a uprobe takes), if a segment holds it."""
        for seg in self.segments:
            if seg.vaddr <= vaddr < seg.vaddr + seg.filesz:
                return vaddr - seg.vaddr + seg.offset
        return None

    def address_of_offset(self, offset: int) -> int | None:
        """The address of file offset ``offset``, if it is inside an executable segment."""
        for seg in self.segments:
            if seg.executable and seg.offset <= offset < seg.offset + seg.filesz:
                return offset - seg.offset + seg.vaddr
        return None

    def function_at(self, vaddr: int) -> ElfSymbol | None:
        """The function whose [value, value+size) holds ``vaddr``."""
        for s in self.symbols.values():
            if s.is_function and s.value <= vaddr < s.value + max(1, s.size):
                return s
        return None

    def first_load_vaddr(self) -> int:
        return min((s.vaddr for s in self.segments), default=0)


@lru_cache(maxsize=32)
def _cached(path: str, mtime_ns: int, size: int) -> ElfFile:
    return ElfFile(path)


def elf_file(path: str) -> ElfFile:
    """``ElfFile(path)``, cached while the file is unchanged. OSError, NotElf."""
    st = os.stat(path)
    return _cached(os.path.realpath(path), st.st_mtime_ns, st.st_size)


def symbol_value(path: str, name: str) -> int | None:
    """st_value of a defined symbol ``name`` in the file's .symtab or .dynsym."""
    try:
        sym = elf_file(path).symbol(name)
    except (OSError, NotElf):
        return None
    return sym.value if sym else None


def load_bias(pid: int, path: str) -> int:
    """What to add to the file's addresses for process ``pid``: 0 for a fixed-address
    executable, else where its first segment is mapped minus that segment's address."""
    try:
        elf = elf_file(path)
    except NotElf:
        return 0
    if not elf.position_independent:
        return 0
    real = os.path.realpath(path)
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            parts = line.split()
            if len(parts) >= 6 and parts[5] == real and int(parts[2], 16) == 0:
                return int(parts[0].split("-")[0], 16) - (elf.first_load_vaddr() & ~0xFFF)
    return 0


def process_symbol(pid: int, name: str) -> int | None:
    """The run-time address of symbol ``name`` of process ``pid``'s executable, if it has one."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        value = symbol_value(exe, name)
        return None if value is None else value + load_bias(pid, exe)
    except OSError:
        return None
