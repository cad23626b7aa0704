"""resolve/uprobe_place.py on this machine's libc and bash: files, symbols, offsets, and one
clear line with a caret for each mistake."""
from __future__ import annotations

import os

import pytest

from ebpfprof.errors import SelectorError
from ebpfprof.lang.selector.parser import parse_selectors
from ebpfprof.resolve.uprobe_place import uprobe_place
from ebpfprof.symbols.binaries import find_binary
from ebpfprof.symbols.elf import elf_file

LIBC = find_binary("c", os.getpid())


def place(text: str):
    return uprobe_place(parse_selectors(text)[-1], os.getpid())


def test_function_and_offset_map_to_file_offsets():
    elf = elf_file(LIBC)
    malloc = elf.symbol("malloc")
    p = place("uprobe:libc:malloc")
    assert (p.path, p.function, p.function_offset, p.address) == (LIBC, "malloc", 0, malloc.value)
    assert p.offset == elf.file_offset(malloc.value)
    with open(LIBC, "rb") as f:       # the same bytes as at the address in the segment
        f.seek(p.offset)
        code = f.read(4)
    assert code and place("uprobe:libc:malloc+4").offset == p.offset + 4
    assert place('uretprobe:"malloc@' + LIBC + '"').offset == p.offset


def test_address_form_names_its_function():
    malloc = elf_file(LIBC).symbol("malloc")
    p = place(f"uprobe:{LIBC}:0x{malloc.value + 8:x}")
    assert (p.function, p.function_offset) == ("malloc", 8)
    assert "malloc+0x8 in" in p.describe()


@pytest.mark.parametrize("text, message, marked", [
    ("uprobe:libcc:malloc", "no file 'libcc'", "libcc"),
    ('uprobe:"/no/such/zz":f', "no such file: /no/such/zz", "/no/such/zz"),
    ("uprobe:/etc/passwd:x", "/etc/passwd is not an ELF binary", "/etc/passwd"),
    ("uprobe:/etc:x", "/etc is not a regular file", "/etc"),
    ("uprobe:c:mallok", "'mallok' is not a function of", "mallok"),
    ("uprobe:libc:stdout", "'stdout' is a variable, not a function", "stdout"),
    ("uprobe:libc:strlen", "is an IFUNC", "strlen"),
    ("uprobe:libc:malloc+0x100000", "is past the end of malloc", "malloc+0x100000"),
    ("uprobe:bash:0x10", "0x10 is not an address of code", "0x10"),
])
def test_mistakes_are_one_line_with_a_caret(text, message, marked):
    with pytest.raises(SelectorError) as e:
        place(text)
    assert message in e.value.message and "\n" not in e.value.message
    line, carets = e.value.detail.splitlines()
    assert line.strip() == text
    start = carets.index("^")
    assert line[start:start + len(carets.strip())] == marked


def test_close_symbols_are_suggested():
    with pytest.raises(SelectorError) as e:
        place("uprobe:c:mallok")
    assert "did you mean 'malloc'" in e.value.hint
