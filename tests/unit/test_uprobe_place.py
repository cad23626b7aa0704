"""resolve/uprobe_place.py on this machine's libc and bash: files, symbols, offsets, and one
clear line with a caret for each mistake."""
from __future__ import annotations

import os
import subprocess

import pytest

from ebpfprof.errors import SelectorError
from ebpfprof.lang.selector.parser import parse_selectors
from ebpfprof.resolve.uprobe_place import uprobe_place
from ebpfprof.symbols.binaries import find_binary
from ebpfprof.symbols.disasm import instruction_starts
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
    second = min(a for a in instruction_starts(LIBC, malloc.value, malloc.value + malloc.size) if a > malloc.value)
    step = second - malloc.value
    assert code and place(f"uprobe:libc:malloc+{step}").offset == p.offset + step
    assert place('uretprobe:"malloc@' + LIBC + '"').offset == p.offset


def test_address_form_names_its_function():
    malloc = elf_file(LIBC).symbol("malloc")
    third = sorted(instruction_starts(LIBC, malloc.value, malloc.value + malloc.size))[2]
    p = place(f"uprobe:{LIBC}:0x{third:x}")
    assert (p.function, p.function_offset) == ("malloc", third - malloc.value)
    assert f"malloc+0x{third - malloc.value:x} in" in p.describe()


def test_an_offset_inside_an_instruction_is_refused():
    """A uprobe there would overwrite the middle of an instruction: the program would crash."""
    malloc = elf_file(LIBC).symbol("malloc")
    starts = sorted(instruction_starts(LIBC, malloc.value, malloc.value + malloc.size))
    inside = next(a for a, b in zip(starts, starts[1:]) if b - a > 1) + 1 - malloc.value
    with pytest.raises(SelectorError) as e:
        place(f"uprobe:libc:malloc+{inside}")
    assert f"malloc+0x{inside:x} is inside an instruction of malloc" in e.value.message
    assert "objdump -d" in e.value.hint
    with pytest.raises(SelectorError) as e:
        place(f"uprobe:{LIBC}:0x{malloc.value + inside:x}")
    assert "is inside an instruction" in e.value.message


def test_instruction_starts_are_objdump_s():
    """The decoder is objdump: its first instructions of malloc are ours, in order, with their
    lengths adding up (each starts where the one before ends)."""
    malloc = elf_file(LIBC).symbol("malloc")
    starts = sorted(instruction_starts(LIBC, malloc.value, malloc.value + malloc.size))
    assert starts[0] == malloc.value and len(starts) > 10
    assert all(0 < b - a <= 15 for a, b in zip(starts, starts[1:]))      # x86: 1 to 15 bytes


def test_the_default_version_of_a_symbol_is_chosen():
    """libc exports memcpy@GLIBC_2.2.5 (compat, hidden) and memcpy@@GLIBC_2.14 (the default,
    an IFUNC): the plain name is the default, as the linker binds it. readelf is the witness."""
    out = subprocess.run(["readelf", "-W", "--dyn-syms", LIBC], capture_output=True, text=True, check=True).stdout
    defaults, hidden = {}, set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 8 and parts[3] in ("FUNC", "IFUNC") and "@" in parts[7] and parts[6] != "UND":
            name, _, version = parts[7].partition("@")
            if version.startswith("@"):
                defaults[name] = int(parts[1], 16)
            else:
                hidden.add(name)
    both = sorted(set(defaults) & hidden)
    assert "memcpy" in both and len(both) > 10, both
    elf = elf_file(LIBC)
    assert {n: elf.symbol(n).value for n in both} == {n: defaults[n] for n in both}
    with pytest.raises(SelectorError) as e:
        place("uprobe:libc:memcpy")
    assert "is an IFUNC" in e.value.message


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
