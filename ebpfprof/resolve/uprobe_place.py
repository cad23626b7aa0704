"""Where a uprobe goes: a uprobe selector's FILE and PLACE → a file and an offset in it.

The kernel's uprobes take (inode, file offset). FILE is found like BCC finds it
(``symbols/binaries.py``); PLACE is a function of the file's symbol tables (+ an offset inside
it), or an address of the file, and either is mapped to its file offset through the segment
that holds it. Each mistake is one line with a caret under what is wrong.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ebpfprof.errors import SelectorError, close_matches
from ebpfprof.lang.selector.ast import ProbeSelector, Span
from ebpfprof.symbols.binaries import find_binary
from ebpfprof.symbols.disasm import DisassemblyUnavailable, instruction_starts
from ebpfprof.symbols.elf import STT_GNU_IFUNC, NotElf, elf_file

__all__ = ["UprobePlace", "uprobe_place"]


@dataclass(frozen=True)
class UprobePlace:
    path: str            # the file, as found
    offset: int          # file offset of the probed instruction
    address: int         # the same place as an address of the file (st_value + OFF)
    function: str        # the function holding it ("" if no symbol covers it)
    function_offset: int

    def describe(self) -> str:
        where = (f"{self.function}+0x{self.function_offset:x}" if self.function_offset else self.function) \
            if self.function else f"0x{self.address:x}"
        return f"{where} in {self.path} (file offset 0x{self.offset:x})"


def _error(sel: ProbeSelector, span: Span | None, message: str, hint: str = "") -> SelectorError:
    detail = ""
    if span is not None:
        start, end = span.start - sel.span.start, span.end - sel.span.start
        detail = Span(start, max(end, start + 1)).caret(sel.text)
    return SelectorError(f"{sel.text}: {message}", detail=detail, hint=hint)


def uprobe_place(sel: ProbeSelector, pid: int | None = None) -> UprobePlace:
    """Resolve ``sel`` (a uprobe or uretprobe); ``pid`` (the run's first -p process) is where
    a library short name is looked up first."""
    assert sel.file is not None
    path = find_binary(sel.file, pid)
    if path is None:
        raise _error(sel, sel.file_span, f"no file '{sel.file}': not a path, a library in the linker's "
                     f"cache{' or process ' + str(pid) if pid else ''}, or a program on PATH",
                     hint='give the path: uprobe:FUNC@"/path/to/binary"')
    if not os.path.exists(path):
        raise _error(sel, sel.file_span, f"no such file: {path}")
    if not os.path.isfile(path):
        raise _error(sel, sel.file_span, f"{path} is not a regular file")
    try:
        elf = elf_file(path)
    except NotElf:
        raise _error(sel, sel.file_span, f"{path} is not an ELF binary (a script?)",
                     hint="probe the interpreter or library that runs it, e.g. uprobe:bash:readline") from None
    except OSError as e:
        raise _error(sel, sel.file_span, f"cannot read {path}: {e.strerror}") from None

    if sel.address is not None:
        offset = elf.file_offset(sel.address)
        if offset is None or elf.address_of_offset(offset) is None:
            raise _error(sel, sel.function_span, f"0x{sel.address:x} is not an address of code in {path}",
                         hint="an address as nm or objdump -d print it, inside an executable segment")
        func = elf.function_at(sel.address)
        _check_instruction_start(sel, path, func, sel.address)
        return UprobePlace(path, offset, sel.address, func.name if func else "",
                           sel.address - func.value if func else 0)

    sym = elf.symbol(sel.function)
    if sym is None or not sym.is_function:
        guesses = close_matches(sel.function, elf.function_names())
        what = "is a variable, not a function" if sym is not None else "is not a function"
        raise _error(sel, sel.function_span, f"'{sel.function}' {what} of {path}",
                     hint=(f"did you mean {', '.join(repr(g) for g in guesses)}? " if guesses else "")
                          + f"list its functions: nm {'' if elf.has_symtab else '-D '}--defined-only {path}")
    if sym.type == STT_GNU_IFUNC:
        # implementations are named after it (__memcpy_avx_unaligned); __memcpy_chk is a wrapper
        variants = sorted(n for n in elf.function_names() if n != sym.name and sym.name.strip("_") + "_" in n
                          and elf.symbol(n).type != STT_GNU_IFUNC and not n.endswith("_chk"))[:6]
        raise _error(sel, sel.function_span, f"'{sel.function}' of {path} is an IFUNC: its code is chosen "
                     f"when the program loads, and this address is only the chooser",
                     hint=(f"probe the implementation your CPU runs, one of: {', '.join(variants)}"
                           if variants else f"{path} has no symbols for its implementations (stripped): probe a "
                                             f"function that calls {sel.function}, or a build with symbols"))
    if sel.offset and sym.size and sel.offset >= sym.size:
        raise _error(sel, sel.function_span, f"{sel.function}+0x{sel.offset:x} is past the end of "
                     f"{sel.function} ({sym.size} bytes)")
    address = sym.value + sel.offset
    offset = elf.file_offset(address)
    if offset is None or elf.address_of_offset(offset) is None:
        raise _error(sel, sel.function_span, f"{sel.place} of {path} is not in an executable segment")
    _check_instruction_start(sel, path, sym, address)
    return UprobePlace(path, offset, address, sym.name, sel.offset)


def _check_instruction_start(sel: ProbeSelector, path: str, func, address: int) -> None:
    """A uprobe inside an instruction corrupts it (the traced program crashes): a place other
    than a function's entry must be where the disassembly of that function starts one."""
    if func is not None and address == func.value:
        return
    if func is None:
        raise _error(sel, sel.function_span, f"0x{address:x} is in no function of {path}, so it cannot "
                     f"be checked to start an instruction (a uprobe inside one crashes the program)",
                     hint=f"probe a function, or an address inside one: nm --defined-only {path}")
    end = max(func.value + func.size, address + 1)
    try:
        starts = instruction_starts(path, func.value, end)
    except DisassemblyUnavailable as e:
        raise _error(sel, sel.function_span, f"cannot check that {sel.place} starts an instruction: {e}",
                     hint=f"probe {func.name}'s entry (uprobe:{func.name}), or install binutils") from None
    if address in starts:
        return
    before = max((a for a in starts if a < address), default=func.value)
    after = min((a for a in starts if a > address), default=None)
    near = f"0x{before - func.value:x}" + (f" or +0x{after - func.value:x}" if after is not None else "")
    raise _error(sel, sel.function_span, f"{sel.place} is inside an instruction of {func.name} "
                 f"(a uprobe there would corrupt it and crash the program)",
                 hint=f"the nearest instructions start at {func.name}+{near}; "
                      f"see them with: objdump -d --start-address=0x{func.value:x} "
                      f"--stop-address=0x{end:x} {path}")
